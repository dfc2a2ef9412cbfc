"""In-memory pools: a datasets.Dataset (or a DatasetDict split) or a pandas.DataFrame in, the same type out."""

import datasets
import pandas
import pytest
from conftest import labelled_records

import datawhisperer
from datawhisperer.backends.fake import FakeBackend
from datawhisperer.errors import UserError

OPTIONS = {"task": "classification", "n_demos": 3, "n_queries": 2, "quiet": True, "balance": "off"}


def reference_order(records):
    selection = datawhisperer.select(records, backend_instance=FakeBackend(), **OPTIONS)
    return selection.subset(0.25)


def test_a_dataset_in_gives_a_dataset_subset_out_with_the_same_rows_as_a_list():
    records = labelled_records(24)
    expected = reference_order(records)
    selection = datawhisperer.select(datasets.Dataset.from_list(records), backend_instance=FakeBackend(), **OPTIONS)
    subset = selection.subset(0.25)
    assert isinstance(subset, datasets.Dataset) and subset.to_list() == expected and len(subset) == 6


def test_a_dataframe_in_gives_dataframe_rows_out_in_the_selected_order():
    records = labelled_records(24)
    expected = reference_order(records)
    frame = pandas.DataFrame(records)
    subset = datawhisperer.select(frame, backend_instance=FakeBackend(), **OPTIONS).subset(0.25)
    assert isinstance(subset, pandas.DataFrame) and subset.to_dict("records") == expected
    assert list(subset.index) == [records.index(r) for r in expected]  # the caller's own row labels


def test_a_dataset_dict_split_is_named_and_a_wrong_one_is_a_one_line_error():
    records = labelled_records(24)
    splits = datasets.DatasetDict({"train": datasets.Dataset.from_list(records),
                                   "test": datasets.Dataset.from_list(records[:8])})
    subset = datawhisperer.select(splits, split="train", backend_instance=FakeBackend(), **OPTIONS).subset(6)
    assert isinstance(subset, datasets.Dataset) and subset.to_list() == reference_order(records)
    with pytest.raises(UserError, match="holds the splits train, test: pass split=NAME"):
        datawhisperer.select(splits, backend_instance=FakeBackend(), **OPTIONS)
    with pytest.raises(UserError, match="has no split 'validation'"):
        datawhisperer.select(splits, split="validation", backend_instance=FakeBackend(), **OPTIONS)


def test_what_is_not_a_table_of_records_is_a_one_line_error():
    for bad in ({"text": "a", "label": "b"}, (r for r in labelled_records(4)), 42):
        with pytest.raises(UserError, match="a pool is a path, a list of dicts"):
            datawhisperer.select(bad, backend_instance=FakeBackend(), **OPTIONS)
