import pytest
import torch
from conftest import byte_tokenizer, tiny_model

from datawhisperer.backends import Backend
from datawhisperer.backends.hf import HFBackend
from datawhisperer.errors import UserError
from datawhisperer.prompts import PromptBuilder
from datawhisperer.tasks import Example

DEMOS = [Example((("user", "cat"),), "cats"), Example((("user", "bus stop"),), "bus stops")]
QUERIES = [Example((("user", "dog"),), "dogs"), Example((("user", "a much longer query text"),), "x"),
           Example((("user", "fox"),), "foxes")]


@pytest.fixture(scope="module")
def backend():
    tokenizer = byte_tokenizer()
    return HFBackend(preloaded=(tiny_model("qwen2", tokenizer, seed=3), tokenizer), device="cpu")


def test_greedy_answers_with_shared_prefix_equal_generate(backend):
    prompt = PromptBuilder(backend.tokenizer, "Pluralise.", "single").build(DEMOS, QUERIES)
    [result] = backend.generate([prompt], max_new_tokens=12)
    model, tokenizer = backend.model, backend.tokenizer
    for text, suffix in zip(result.texts, prompt.suffixes):
        ids = tokenizer(prompt.prefix, add_special_tokens=False)["input_ids"] + \
            tokenizer(suffix, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            out = model.generate(torch.tensor([ids]), max_new_tokens=12, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id)
        expected = tokenizer.decode(out[0, len(ids):], skip_special_tokens=True).strip()
        assert text == expected


def test_stop_strings_cut_the_answer(backend):
    prompt = PromptBuilder(backend.tokenizer, "Pluralise.", "single").build(DEMOS, QUERIES[:1])
    [free] = backend.generate([prompt], max_new_tokens=10)[0].texts
    if len(free) >= 4:
        stop = free[2:4]
        [cut] = backend.generate([prompt], max_new_tokens=10, stop=(stop,))[0].texts
        assert stop not in cut and free.startswith(cut)


def test_likelihood_scores_are_the_gold_answer_mean_token_probability(backend):
    prompt = PromptBuilder(backend.tokenizer, "Pluralise.", "single").build(DEMOS, QUERIES)
    answers = [q.answer for q in QUERIES]
    [result] = backend.score([prompt], [answers])
    tokenizer, model = backend.tokenizer, backend.model
    prefix = tokenizer(prompt.prefix, add_special_tokens=False)["input_ids"]
    for score, suffix, answer in zip(result.token_scores, prompt.suffixes, answers):
        query = tokenizer(suffix, add_special_tokens=False)["input_ids"]
        gold = tokenizer(answer, add_special_tokens=False)["input_ids"]
        ids = prefix + query + gold
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0].float()
        probs = logits[len(prefix) + len(query) - 1:-1].softmax(-1)
        expected = probs.gather(-1, torch.tensor(gold).unsqueeze(-1)).mean()
        assert score == pytest.approx(float(expected), abs=1e-5)
    # attention in likelihood mode counts the query tokens only, as in generation
    [generated] = backend.generate([prompt], max_new_tokens=1)
    assert result.demo_mass == pytest.approx(generated.demo_mass, abs=1e-4)


def test_load_from_directory_and_layer_checks(tiny_model_dir):
    backend = HFBackend(model=str(tiny_model_dir), device="cpu", log=lambda m: None)
    assert backend.num_layers == 3 and backend.layer == 1  # round(0.4 * 3)
    assert backend.description["dtype"] == "float32"
    assert HFBackend(model=str(tiny_model_dir), layer=-1, device="cpu").layer == 2
    with pytest.raises(UserError, match="layer 7 is outside the model"):
        HFBackend(model=str(tiny_model_dir), layer=7, device="cpu")


def test_missing_model_is_a_clear_error(tmp_path):
    with pytest.raises(UserError, match="not found"):
        HFBackend(model=str(tmp_path / "nope"))
    with pytest.raises(UserError, match="no config.json"):
        HFBackend(model=str(tmp_path))
    with pytest.raises(UserError, match="not in the local Hugging Face cache"):
        HFBackend(model="someone/not-a-cached-model")


def test_model_id_from_the_local_hub_cache(tmp_path, monkeypatch, tiny_model_dir):
    """A model id resolves offline from the Hugging Face cache layout (models--org--name/snapshots/...)."""
    import shutil

    import huggingface_hub.constants as hub_constants

    snapshot = tmp_path / "hub" / "models--tiny-org--tiny-llama" / "snapshots" / "0123abcd"
    shutil.copytree(tiny_model_dir, snapshot)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("0123abcd")
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    backend = HFBackend(model="tiny-org/tiny-llama", device="cpu", log=lambda m: None)
    assert backend.num_layers == 3


def test_episodes_batched_together_compute_what_each_computes_alone(backend):
    builder = PromptBuilder(backend.tokenizer, "Pluralise.", "single")
    more = [Example((("user", "a very long demonstration input here"),), "long answers"),
            Example((("user", "x"),), "xs")]
    prompts = [builder.build(DEMOS, QUERIES), builder.build(more + DEMOS, QUERIES[:1]), builder.build(DEMOS[:1],
                                                                                                     QUERIES[1:])]
    together = backend.generate(prompts, max_new_tokens=6)
    for prompt, batched in zip(prompts, together):
        [alone] = backend.generate([prompt], max_new_tokens=6)
        assert batched.texts == alone.texts and batched.demo_tokens == alone.demo_tokens
        assert batched.demo_mass == pytest.approx(alone.demo_mass, abs=1e-4)
    answers = [[q.answer for q in QUERIES], [QUERIES[0].answer], [q.answer for q in QUERIES[1:]]]
    scored = backend.score(prompts, answers)
    for prompt, episode_answers, batched in zip(prompts, answers, scored):
        [alone] = backend.score([prompt], [episode_answers])
        assert batched.token_scores == pytest.approx(alone.token_scores, abs=1e-5)
        assert batched.demo_mass == pytest.approx(alone.demo_mass, abs=1e-4)


def test_the_backend_is_the_interface(backend):
    from datawhisperer.backends.fake import FakeBackend

    assert isinstance(backend, Backend) and isinstance(FakeBackend(), Backend)


def test_loglikelihood_is_the_continuation_log_probability(backend):
    tokenizer, model = backend.tokenizer, backend.model
    requests = [("<|im_start|>user\ncat<|im_end|>\n", "cats"), ("", "a bus stop"), ("dog ", "dogs and foxes")]
    for (total, n), (context, continuation) in zip(backend.loglikelihood(requests), requests):
        ids = tokenizer(context + continuation, add_special_tokens=False)["input_ids"]
        start = max(1, len(tokenizer(context, add_special_tokens=False)["input_ids"]))  # one token per byte
        with torch.no_grad():
            logprobs = model(torch.tensor([ids])).logits[0].float().log_softmax(-1)
        expected = logprobs[start - 1:-1].gather(-1, torch.tensor(ids[start:]).unsqueeze(-1)).sum()
        assert n == len(ids) - start and total == pytest.approx(float(expected), abs=1e-4)



def test_embeddings_are_the_mean_hidden_state_of_each_query_and_answer_after_the_prefix(backend):
    """score(embed=True) reads the layer's output hidden states in the packed pass: each suffix's mean equals a
    plain forward pass's hidden_states[layer + 1] over that suffix's tokens, after the prefix alone."""
    prompt = PromptBuilder(backend.tokenizer, "Pluralise.", "single").build(DEMOS, QUERIES)
    answers = [q.answer for q in QUERIES]
    [result] = backend.score([prompt], [answers], embed=True)
    tokenizer, model = backend.tokenizer, backend.model
    prefix = tokenizer(prompt.prefix, add_special_tokens=False)["input_ids"]
    means = []
    for vector, suffix, answer in zip(result.embeddings, prompt.suffixes, answers):
        ids = tokenizer(prompt.prefix + suffix + answer, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            hidden = model(torch.tensor([ids]), output_hidden_states=True).hidden_states[backend.layer + 1][0]
        expected = hidden[len(prefix):].mean(0)
        assert vector.shape == expected.shape and torch.allclose(torch.from_numpy(vector), expected, atol=1e-4)
        means.append(vector)
    assert not torch.allclose(torch.from_numpy(means[0]), torch.from_numpy(means[1]), atol=1e-3)  # they differ
    [plain] = backend.score([prompt], [answers])  # the capture changes nothing else
    assert plain.token_logprobs == pytest.approx(result.token_logprobs, abs=1e-6) and plain.embeddings is None
