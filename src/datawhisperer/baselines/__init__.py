"""Selection methods to compare against. Each is a `score(context) -> np.ndarray` function (higher is
selected first) registered as a `methods.Baseline` in the one method registry (methods.py), so that
`datawhisperer select --method NAME` runs it through the same runner, checks and outputs as Data Whisperer."""
