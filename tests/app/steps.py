"""Finding elements in an AppTest by what a person reads, shared by the page tests."""


def button(at, label):
    return next(b for b in at.button if b.label == label)


def table(at, column):
    """The (first) table — interactive dataframe or static table — that has this column."""
    return next(d.value for d in [*at.dataframe, *at.table] if column in d.value.columns)
