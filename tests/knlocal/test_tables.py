"""knlocal.tables: the aligned tables of `knlocal status` and `knlocal watch`."""

from knlocal.tables import table


def test_columns_are_as_wide_as_their_widest_cell_two_spaces_apart() -> None:
    assert table(("A", "LONG"), [("xyz", 1), ("", 22)]) == [
        "A    LONG",
        "xyz  1   ",
        "     22  ",
    ]


def test_no_rows_gives_the_header_alone() -> None:
    assert table(("NAME", "N"), []) == ["NAME  N"]
