"""cookbook.kit.show: the one table formatter and the one pretty-printer."""

from dataclasses import dataclass

from cookbook.kit.show import Pretty, table


def test_table_aligns_columns_from_the_first_row():
    text = table([{"name": "a", "value": 1.5}, {"name": "longer", "value": 22}])
    assert text.splitlines() == ["name    value", "------  -----", "a       1.5", "longer  22"]
    assert table([]) == "(no rows)"
    assert table(iter([{"x": 1}])).splitlines()[-1] == "1"  # any iterable of dicts, e.g. a generator


def test_pretty_shows_str_in_ipython():
    from IPython.lib.pretty import pretty

    @dataclass(frozen=True)
    class Thing(Pretty):
        n: int

        def __str__(self) -> str:
            return f"{self.n} things"

    assert pretty(Thing(3)) == "3 things" and repr(Thing(3)).endswith("Thing(n=3)")  # repr stays for debugging
