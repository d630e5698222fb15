"""Tests of canned messages: matching, ranking, index upkeep, categories, placeholders."""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.canned.book import CannedBook, searchable
from engine.canned.records import CannedCategory, CannedError, CannedMessage, CannedUse
from engine.canned.text import fill_placeholders, mark, normalize, query_of, starts_of_marked


def wide(text: str) -> str:
    """The full-width form of printable ASCII ``text``."""
    return "".join(chr(ord(ch) + 0xFEE0) for ch in text)


def make_book(*texts: str | tuple[str, str | None], start: float = 1.0) -> CannedBook:
    """A book with categories "general" and "billing" and messages m1, m2... created 1 s apart.

    A text may be given with its department as a pair; alone it is shared.
    """
    book = CannedBook(
        categories=[
            CannedCategory(id="general", name="General"),
            CannedCategory(id="billing", name="Billing"),
        ]
    )
    for n, item in enumerate(texts, start=1):
        text, department = item if isinstance(item, tuple) else (item, None)
        book.add_message(
            CannedMessage(
                id=f"m{n}",
                text=text,
                category="general",
                department=department,
                created_at=start + n,
            )
        )
    return book


def ids(
    book: CannedBook,
    query: str,
    *,
    departments: Collection[str] = (),
    agent_id: str = "alice",
    limit: int = 10,
) -> list[str]:
    found = book.search(query, departments=departments, agent_id=agent_id, limit=limit)
    return [message.id for message in found]


# -- drafts ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("draft", "query"),
    [
        ("Hello #ref", "ref"),
        ("#", ""),
        ("no hash here", None),
        ("", None),
        ("#ref and more", None),
        ("# ref", None),
        ("#ref\t", None),
        ("a #b #cd", "cd"),
        ("はい#返金", "返金"),
        ("はい\uff03返金", "返金"),  # the full-width number sign
        ("#返金\u3000", None),  # the ideographic space ends the query too
    ],
)
def test_query_of(draft: str, query: str | None) -> None:
    assert query_of(draft) == query


def test_suggest_reads_the_query_from_the_draft() -> None:
    book = make_book("Your refund is on its way", "Thanks for waiting")
    assert [m.id for m in book.suggest("Hi! #ref", departments=(), agent_id="a")] == ["m1"]
    assert [m.id for m in book.suggest("#", departments=(), agent_id="a")] == ["m2", "m1"]
    assert book.suggest("Hi! #ref and", departments=(), agent_id="a") == []
    assert book.suggest("Hi there", departments=(), agent_id="a") == []


# -- normalisation and word starts -------------------------------------------------------------


def test_normalize_folds_width_and_case_but_not_kana() -> None:
    assert normalize(wide("ABC")) == "abc"
    assert normalize("ｱｶｳﾝﾄ") == "アカウント"
    assert normalize("STRASSE") == normalize("straße")
    assert normalize("ﬁle") == "file"
    assert normalize("アカウント") != normalize("あかうんと")


@pytest.mark.parametrize(
    ("text", "starts"),
    [
        ("hello world", [0, 6]),
        ("re-send (now)", [0, 3, 9]),
        ("order123", [0, 5]),
        ("ご返金の手続き", [0, 1, 3, 4, 6]),
        ("アカウント設定", [0, 5]),
        ("サーバーエラー", [0]),  # the prolonged sound mark joins the katakana word
        ("すごーい", [0]),  # and the hiragana one
        ("2024年5月", [0, 4, 5, 6]),
        ("café au lait", [0, 5, 8]),
        ("x\u0301y z", [0, 4]),  # a combining mark joins the word
        ("ーabc", [1]),
        ("...", []),
        ("Hello世界", [0, 5]),
    ],
)
def test_word_starts(text: str, starts: list[int]) -> None:
    assert starts_of_marked(mark(normalize(text))) == starts


# -- matching ----------------------------------------------------------------------------------


def test_english_word_start_ranks_before_inside_a_word() -> None:
    book = make_book("Your refund is on its way", "We prefer email", "Nothing here")
    # m2 is newer, but "ref" starts a word only in m1
    assert ids(book, "ref") == ["m1", "m2"]
    assert ids(book, "re") == ["m1", "m3", "m2"]  # inside "prefer" and "here": newest first
    assert ids(book, "r") == ["m1", "m3", "m2"]  # "Your", "here", "prefer": all inside
    assert ids(book, "refund") == ["m1"]
    assert ids(book, "refunds") == []


def test_a_longer_query_must_start_a_word_as_a_whole() -> None:
    book = make_book("Your card balance", "Car discount: see the scorecard")
    # m2 has "car" at a word start, but "card" only inside "scorecard"
    assert ids(book, "car") == ["m2", "m1"]
    assert ids(book, "card") == ["m1", "m2"]
    assert ids(book, "cardb") == []


def test_prolonged_sound_mark_and_combining_marks_do_not_start_words() -> None:
    book = make_book("新バージョン", "サーバー", "x y", "x\u0301y")
    # バ starts a word after the kanji 新; after サー it is inside the katakana word
    assert ids(book, "バ") == ["m1", "m2"]
    assert ids(book, "y") == ["m3", "m4"]


def test_japanese_matches_without_spaces_and_ranks_script_changes_as_word_starts() -> None:
    book = make_book("ご返金の手続きについて", "全額返金いたします", "配送状況のご案内")
    assert ids(book, "返金") == ["m1", "m2"]  # 返 follows hiragana in m1, kanji in m2
    assert ids(book, "金") == ["m2", "m1"]  # inside a kanji word in both: newest first
    assert ids(book, "手続") == ["m1"]
    assert ids(book, "ご") == ["m1", "m3"]
    assert ids(book, "返金の手") == ["m1"]
    assert ids(book, "返品") == []


def test_width_and_case_are_folded_in_messages_and_queries() -> None:
    book = make_book(wide("REFUND") + " policy", "refund POLICY", "ｱｶｳﾝﾄ設定")
    assert ids(book, "Refund") == ["m2", "m1"]
    assert ids(book, wide("ref")) == ["m2", "m1"]
    assert ids(book, "policy") == ["m2", "m1"]
    assert ids(book, "アカウント") == ["m3"]
    assert ids(book, "ｱｶ") == ["m3"]


def test_katakana_and_hiragana_are_not_folded_together() -> None:
    book = make_book("アカウント", "あかうんと")
    assert ids(book, "アカ") == ["m1"]
    assert ids(book, "あか") == ["m2"]


def test_only_the_agents_departments_and_shared_messages_are_suggested() -> None:
    book = make_book(
        ("refund for sales", "sales"),
        ("refund for support", "support"),
        ("refund for all", None),
        ("refund for billing", "billing"),
    )
    assert ids(book, "refund", departments=["sales"]) == ["m3", "m1"]
    assert ids(book, "refund", departments={"sales", "billing"}) == ["m4", "m3", "m1"]
    assert ids(book, "refund", departments=()) == ["m3"]
    assert ids(book, "", departments=["support"]) == ["m3", "m2"]
    with pytest.raises(CannedError) as caught:
        ids(book, "refund", departments="sales")
    assert caught.value.code == "invalid"


def test_uses_rank_per_agent_then_newest_then_id() -> None:
    book = make_book("refund one", "refund two", "refund three")
    book.add_message(CannedMessage(id="m0", text="refund zero", category="general", created_at=4))
    # m0 and m3 were created at the same time: the smaller id first
    assert ids(book, "refund") == ["m0", "m3", "m2", "m1"]
    book.pick("m1", agent_id="alice")
    book.pick("m1", agent_id="alice")
    book.pick("m2", agent_id="alice")
    assert ids(book, "refund", agent_id="alice") == ["m1", "m2", "m0", "m3"]
    assert ids(book, "refund", agent_id="bob") == ["m0", "m3", "m2", "m1"]
    book.pick("m2", agent_id="alice")
    book.pick("m2", agent_id="alice")
    assert ids(book, "refund", agent_id="alice") == ["m2", "m1", "m0", "m3"]
    book.pick("m3", agent_id="bob")
    book.pick("m1", agent_id="bob")
    book.pick("m0", agent_id="bob")
    # equal uses: newest, then the smaller id
    assert ids(book, "refund", agent_id="bob") == ["m0", "m3", "m1", "m2"]


def test_uses_do_not_lift_an_inside_match_above_a_word_start_match() -> None:
    book = make_book("We prefer email", "Your refund")
    for _ in range(5):
        book.pick("m1", agent_id="alice")
    assert ids(book, "ref", agent_id="alice") == ["m2", "m1"]
    assert ids(book, "", agent_id="alice") == ["m1", "m2"]


def test_empty_query_lists_everything_by_uses_then_newest() -> None:
    book = make_book("one", "two", "three", "four")
    assert ids(book, "") == ["m4", "m3", "m2", "m1"]
    book.pick("m2", agent_id="alice")
    assert ids(book, "") == ["m2", "m4", "m3", "m1"]
    assert ids(book, "", limit=2) == ["m2", "m4"]


def test_limit() -> None:
    book = make_book(*[f"refund {n}" for n in range(30)])
    assert ids(book, "refund") == [f"m{n}" for n in range(30, 20, -1)]
    assert ids(book, "refund", limit=3) == ["m30", "m29", "m28"]
    for bad in (0, -1):
        with pytest.raises(CannedError) as caught:
            ids(book, "refund", limit=bad)
        assert caught.value.code == "invalid"


def test_pick_counts_a_use_for_that_agent() -> None:
    book = make_book("Hello")
    assert book.use_count("m1", "alice") == 0
    assert book.pick("m1", agent_id="alice").id == "m1"
    assert book.pick("m1", agent_id="alice").id == "m1"
    assert book.use_count("m1", "alice") == 2
    assert book.use_count("m1", "bob") == 0
    with pytest.raises(CannedError) as caught:
        book.pick("nope", agent_id="alice")
    assert caught.value.code == "not_found"


# -- changes keep the index current ------------------------------------------------------------


def test_edit_updates_the_index() -> None:
    book = make_book("Your refund is on its way", "Other text")
    edited = book.edit_message("m1", text="ご返金の手続きについて")
    assert edited.text == "ご返金の手続きについて"
    assert ids(book, "refund") == []
    assert ids(book, "ref") == []
    assert ids(book, "返金") == ["m1"]
    assert book.message("m1") == edited
    book.edit_message("m1", department="sales")
    assert book.message("m1").text == "ご返金の手続きについて"
    assert ids(book, "返金") == []
    assert ids(book, "返金", departments=["sales"]) == ["m1"]
    book.edit_message("m1", department=None)
    assert ids(book, "返金") == ["m1"]
    book.edit_message("m1", category="billing")
    assert book.message("m1").category == "billing"
    assert ids(book, "返金") == ["m1"]
    with pytest.raises(CannedError) as caught:
        book.edit_message("m1", category="missing")
    assert caught.value.code == "not_found"
    with pytest.raises(CannedError) as caught:
        book.edit_message("m1", text="  ")
    assert caught.value.code == "invalid"
    assert book.message("m1") == CannedMessage(
        id="m1", text="ご返金の手続きについて", category="billing", created_at=2.0
    )


def test_delete_removes_from_suggestions_and_use_counts() -> None:
    book = make_book("refund one", "refund two")
    book.pick("m2", agent_id="alice")
    book.delete_message("m2")
    assert ids(book, "refund", agent_id="alice") == ["m1"]
    assert ids(book, "", agent_id="alice") == ["m1"]
    assert book.use_count("m2", "alice") == 0
    with pytest.raises(CannedError) as caught:
        book.delete_message("m2")
    assert caught.value.code == "not_found"
    # the id can be used again, and the new message is found
    book.add_message(CannedMessage(id="m2", text="refund again", category="general", created_at=9))
    assert ids(book, "refund") == ["m2", "m1"]
    assert book.use_count("m2", "alice") == 0


def test_messages_added_out_of_order_rank_by_created_at() -> None:
    book = make_book("refund a", "refund b")  # created at 2 and 3
    book.add_message(CannedMessage(id="old", text="refund c", category="general", created_at=0))
    book.add_message(CannedMessage(id="mid", text="refund d", category="general", created_at=2.5))
    assert ids(book, "refund") == ["m2", "mid", "m1", "old"]
    book.add_message(CannedMessage(id="new", text="refund e", category="general", created_at=10))
    assert ids(book, "refund") == ["new", "m2", "mid", "m1", "old"]


def test_many_out_of_order_messages_rank_by_created_at() -> None:
    book = make_book("refund now", start=1000)
    for n in range(250):  # each older than the last: all out of slot order
        book.add_message(
            CannedMessage(
                id=f"s{n:03d}", text=f"refund {n}", category="general", created_at=900 - n
            )
        )
        if n in (0, 50, 99, 100, 101, 249):
            assert ids(book, "refund", limit=3) == ["m1", "s000", "s001"][: n + 2]
            assert ids(book, "", limit=300)[-1] == f"s{n:03d}"
    book.delete_message("s000")
    book.edit_message("s249", text="returned")
    assert ids(book, "refund", limit=3) == ["m1", "s001", "s002"]
    assert ids(book, "ret") == ["s249"]


def test_many_deletes_then_lookups_stay_correct() -> None:
    book = make_book(*[f"refund {n}" for n in range(40)])
    for n in range(1, 40, 2):
        book.delete_message(f"m{n}")
    for n in range(2, 30, 2):
        book.delete_message(f"m{n}")
    assert ids(book, "refund") == ["m40", "m38", "m36", "m34", "m32", "m30"]
    assert ids(book, "refund", limit=2) == ["m40", "m38"]


# -- categories --------------------------------------------------------------------------------


def test_categories_add_rename_list() -> None:
    book = make_book()
    assert [c.id for c in book.categories()] == ["billing", "general"]
    assert book.rename_category("billing", "Zahlungen") == CannedCategory(
        id="billing", name="Zahlungen"
    )
    assert [c.id for c in book.categories()] == ["general", "billing"]
    for category_id, name in (("general", "Again"), ("x", " "), ("", "Empty id")):
        with pytest.raises(CannedError) as caught:
            book.add_category(category_id, name)
        assert caught.value.code == "invalid"
    with pytest.raises(CannedError) as caught:
        book.rename_category("missing", "Name")
    assert caught.value.code == "not_found"


def test_delete_category_refuses_when_it_holds_messages() -> None:
    book = make_book("refund")
    with pytest.raises(CannedError) as caught:
        book.delete_category("general")
    assert caught.value.code == "category_not_empty"
    assert ids(book, "refund") == ["m1"]
    assert {c.id for c in book.categories()} == {"general", "billing"}
    book.delete_category("billing")  # empty: no need to say anything
    assert [c.id for c in book.categories()] == ["general"]


def test_delete_category_deleting_its_messages() -> None:
    book = make_book("refund one", "refund two")
    book.add_message(CannedMessage(id="b", text="refund bill", category="billing", created_at=0))
    book.pick("m1", agent_id="alice")
    book.delete_category("general", messages="delete")
    assert [c.id for c in book.categories()] == ["billing"]
    assert ids(book, "refund") == ["b"]
    assert [m.id for m in book.messages()] == ["b"]
    assert book.use_count("m1", "alice") == 0


def test_delete_category_moving_its_messages() -> None:
    book = make_book("refund one", "refund two")
    book.delete_category("general", messages="move", move_to="billing")
    assert [c.id for c in book.categories()] == ["billing"]
    assert [m.category for m in book.messages()] == ["billing", "billing"]
    assert ids(book, "refund") == ["m2", "m1"]


@pytest.mark.parametrize(
    ("category", "kwargs", "code"),
    [
        ("missing", {}, "not_found"),
        ("general", {"messages": "move"}, "invalid"),
        ("general", {"messages": "move", "move_to": "general"}, "invalid"),
        ("general", {"messages": "move", "move_to": "missing"}, "not_found"),
        ("general", {"messages": "delete", "move_to": "billing"}, "invalid"),
        ("general", {"messages": "explode"}, "invalid"),
    ],
)
def test_delete_category_errors(category: str, kwargs: dict[str, str], code: str) -> None:
    book = make_book("refund")
    with pytest.raises(CannedError) as caught:
        book.delete_category(category, **kwargs)  # type: ignore[arg-type]
    assert caught.value.code == code
    assert ids(book, "refund") == ["m1"]
    assert len(book.categories()) == 2


# -- validation, listing, snapshots ------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "code"),
    [
        (CannedMessage(id="m1", text="dup", category="general", created_at=0), "invalid"),
        (CannedMessage(id="", text="x", category="general", created_at=0), "invalid"),
        (CannedMessage(id="n", text=" \n", category="general", created_at=0), "invalid"),
        (CannedMessage(id="n", text="x", category="missing", created_at=0), "not_found"),
        (CannedMessage(id="n", text="x", category="general", created_at=math.nan), "invalid"),
        (
            CannedMessage(id="n", text="x", category="general", department="", created_at=0),
            "invalid",
        ),
    ],
)
def test_add_message_refuses_bad_messages(message: CannedMessage, code: str) -> None:
    book = make_book("first")
    with pytest.raises(CannedError) as caught:
        book.add_message(message)
    assert caught.value.code == code
    assert [m.id for m in book.messages()] == ["m1"]
    assert ids(book, "") == ["m1"]


def test_messages_listing() -> None:
    book = make_book(("a", "sales"), ("b", None), ("c", "support"))
    book.edit_message("m1", category="billing")
    assert [m.id for m in book.messages()] == ["m3", "m2", "m1"]
    assert [m.id for m in book.messages(departments=["sales"])] == ["m2", "m1"]
    assert [m.id for m in book.messages(category="billing")] == ["m1"]
    assert [m.id for m in book.messages(departments=[], category="general")] == ["m2"]


def test_snapshot_round_trip() -> None:
    book = make_book(("Your refund", "sales"), "ご返金の手続き")
    book.pick("m1", agent_id="alice")
    book.pick("m2", agent_id="bob")
    book.pick("m2", agent_id="bob")
    snapshot = book.snapshot()
    assert snapshot.uses == (
        CannedUse(agent_id="alice", message_id="m1", count=1),
        CannedUse(agent_id="bob", message_id="m2", count=2),
    )
    again = CannedBook.from_snapshot(snapshot)
    assert again.snapshot() == snapshot
    assert ids(again, "", departments=["sales"], agent_id="bob") == ["m2", "m1"]
    assert ids(again, "返金") == ["m2"]
    with pytest.raises(CannedError) as caught:
        CannedBook(
            categories=snapshot.categories,
            messages=snapshot.messages,
            uses=[CannedUse(agent_id="a", message_id="m1", count=0)],
        )
    assert caught.value.code == "invalid"


# -- placeholders ------------------------------------------------------------------------------

VALUES = {
    "visitor.name": "Ann",
    "visitor.email": "ann@example.com",
    "agent.name": "Bo",
    "department.name": "Sales",
}


@pytest.mark.parametrize(
    ("text", "values", "filled"),
    [
        (
            "Hi {visitor.name}, I'm {agent.name} from {department.name}.",
            VALUES,
            "Hi Ann, I'm Bo from Sales.",
        ),
        ("Hi {visitor.name}!", {}, "Hi there!"),
        ("Hi {visitor.name}!", {"visitor.name": ""}, "Hi there!"),
        ("Hi {visitor.name}!", {"visitor.name": "  "}, "Hi there!"),
        ("Mail: {visitor.email}.", {}, "Mail: ."),
        ("{agent.name}|{department.name}", {}, "|"),
        ("{visitor.email}", VALUES, "ann@example.com"),
        (
            "Ticket {ticket.id} {Visitor.Name} { visitor.name } {}",
            VALUES,
            "Ticket {ticket.id} {Visitor.Name} { visitor.name } {}",
        ),
        ("{{visitor.name}} is a placeholder", VALUES, "{visitor.name} is a placeholder"),
        ("{{{visitor.name}}}", VALUES, "{Ann}"),
        ("a { b } c}", {}, "a { b } c}"),
        ("{visitor.name}", {"visitor.name": "{agent.name}"}, "{agent.name}"),
        ("ようこそ{visitor.name}様", {"visitor.name": "山田"}, "ようこそ山田様"),
    ],
)
def test_fill_placeholders(text: str, values: dict[str, str], filled: str) -> None:
    assert fill_placeholders(text, values) == filled


# -- the index against a brute-force reference -------------------------------------------------

# Wide: scripts, widths, case, joiners, and characters that NFKC or casefold change in length.
ALPHABET = "abcAB " + wide("ABa") + " あいうアイウ返金手 12-.、 \u0301ーßİﬁｱ"
# Narrow: so that longer queries often have every bigram in a text without being in it.
NARROW = "abx アイー返\u0301"
DEPARTMENTS = ("d1", "d2")
texts = st.one_of(
    st.text(alphabet=ALPHABET, min_size=1, max_size=12),
    st.text(alphabet=NARROW, min_size=1, max_size=12),
).filter(lambda t: bool(t.strip()))
queries = st.one_of(
    st.text(alphabet=ALPHABET, max_size=4), st.text(alphabet=NARROW, min_size=3, max_size=6)
)
adds = st.tuples(
    st.just("add"),
    texts,
    st.sampled_from((None, *DEPARTMENTS, "d3")),
    st.integers(min_value=0, max_value=6),
)
picks = st.tuples(
    st.just("pick"),
    st.integers(min_value=0),
    st.sampled_from(("a1", "a2")),
    st.integers(min_value=1, max_value=2),
)
changes = st.one_of(
    adds,
    st.tuples(st.just("edit"), st.integers(min_value=0), texts, st.booleans()),
    st.tuples(st.just("move"), st.integers(min_value=0), st.sampled_from((None, "d1", "d3"))),
    st.tuples(st.just("delete"), st.integers(min_value=0)),
    st.tuples(
        st.just("label"),
        st.integers(min_value=0),
        st.one_of(st.just(""), texts),  # title
        st.text(alphabet="abxアイ返\u0301", max_size=3),  # shortcut: no space, no '#'
        st.one_of(st.just(""), texts),  # reading
    ),
    picks,
)
# Some messages first, then changes of every kind, then more picks: enough messages match a
# query that groups, uses and ties decide their order.
operations = st.tuples(
    st.lists(adds, max_size=25), st.lists(changes, max_size=25), st.lists(picks, max_size=10)
).map(lambda parts: [*parts[0], *parts[1], *parts[2]])


def brute_force(
    book: CannedBook, query: str, departments: Collection[str], agent_id: str, limit: int
) -> list[str]:
    """The ranking of the module docstring, by scanning every message."""
    q = normalize(query)
    ranked: list[tuple[int, int, float, str]] = []
    for message in book.messages():
        if message.department is not None and message.department not in departments:
            continue
        text = searchable(message)
        bucket = 0
        if q and message.shortcut and normalize(message.shortcut) == q:
            bucket = -1
        elif q:
            found = [at for at in range(len(text)) if text.startswith(q, at)]
            if not found:
                continue
            starts = set(starts_of_marked(mark(text)))
            bucket = 0 if any(at in starts for at in found) else 1
        uses = book.use_count(message.id, agent_id)
        ranked.append((bucket, -uses, -message.created_at, message.id))
    return [row[3] for row in sorted(ranked)[:limit]]


@settings(max_examples=500, deadline=None)
@given(data=st.data(), ops=operations)
def test_index_matches_brute_force(data: st.DataObject, ops: list[tuple[Any, ...]]) -> None:
    book = make_book()
    made = 0
    for op in ops:
        live = [m.id for m in book.messages()]
        kind = op[0]
        if kind == "add":
            _, text, department, created_at = op
            made += 1
            book.add_message(
                CannedMessage(
                    id=f"x{made}",
                    text=text,
                    category="general",
                    department=department,
                    created_at=float(created_at),
                )
            )
            continue
        if not live:
            continue
        target = live[op[1] % len(live)]
        if kind == "edit":
            book.edit_message(target, text=op[2], category="billing" if op[3] else None)
        elif kind == "move":
            book.edit_message(target, department=op[2])
        elif kind == "delete":
            book.delete_message(target)
        elif kind == "label":
            book.edit_message(target, title=op[2], shortcut=op[3], reading=op[4])
        else:
            for _ in range(op[3]):
                book.pick(target, agent_id=op[2])
    corpus = [searchable(m) for m in book.messages()] or ["a"]
    bigrams = sorted({text[at : at + 2] for text in corpus for at in range(len(text) - 1)})
    copy = CannedBook.from_snapshot(book.snapshot())
    for _ in range(5):
        source = data.draw(st.sampled_from(("text", "bigrams", "any")), label="source")
        if source == "text":
            text = data.draw(st.sampled_from(corpus), label="text")
            start = data.draw(st.integers(0, len(text)), label="start")
            query = text[start : start + data.draw(st.integers(0, 6), label="length")]
        elif source == "bigrams" and bigrams:
            # every bigram of the query is in some text: the index has candidates to reject
            query = data.draw(st.sampled_from(bigrams), label="first bigram")
            for _ in range(data.draw(st.integers(1, 3), label="extra")):
                following = [bigram for bigram in bigrams if bigram[0] == query[-1]]
                if not following:
                    break
                query += data.draw(st.sampled_from(following), label="next bigram")[1]
        else:
            query = data.draw(queries, label="query")
        departments = data.draw(st.frozensets(st.sampled_from(DEPARTMENTS)), label="departments")
        agent = data.draw(st.sampled_from(("a1", "a2", "a3")), label="agent")
        limit = data.draw(st.integers(1, 12), label="limit")
        expected = brute_force(book, query, departments, agent, limit)
        assert ids(book, query, departments=departments, agent_id=agent, limit=limit) == expected
        assert ids(copy, query, departments=departments, agent_id=agent, limit=limit) == expected


# -- titles, shortcuts and readings -----------------------------------------------------------


class TestLabels:
    def book(self) -> CannedBook:
        book = make_book("Thank you for waiting.", "Thanks a lot!", "Refunds take five days.")
        book.add_message(
            CannedMessage(
                id="orei",
                text="ご連絡ありがとうございます。",
                category="general",
                created_at=0,
                title="お礼",
                reading="おれい",
            )
        )
        book.edit_message("m3", title="Refund policy", shortcut="ref")
        return book

    def test_the_reading_finds_a_message(self) -> None:
        """A message titled お礼 whose reading is おれい is found by おれい, and by its title."""
        book = self.book()
        assert ["orei"] == ids(book, "おれい")
        assert ["orei"] == ids(book, "お礼")
        assert ["orei"] == ids(book, "れい")  # inside a word, as in a text

    def test_the_title_is_searched(self) -> None:
        """A title's words match at a word start, like the text's."""
        assert ["m3"] == ids(self.book(), "policy")

    def test_a_shortcut_match_ranks_first(self) -> None:
        """The message whose shortcut is the query comes before word-start matches that are
        newer or more used; a query that only begins a shortcut matches it as a word."""
        book = self.book()
        book.add_message(
            CannedMessage(id="new", text="Referral codes", category="general", created_at=99)
        )
        for _ in range(3):
            book.pick("new", agent_id="alice")
        assert ["m3", "new"] == ids(book, "ref")
        assert ["m3", "new"] == ids(book, wide("REF"))  # folded like the text
        assert ["new", "m3"] == ids(book, "re")  # uses rank among word-start matches

    def test_fields_do_not_run_together(self) -> None:
        """No query matches across the end of one field and the start of the next."""
        book = self.book()
        assert [] == ids(book, "ref")[1:]  # only m3, by its shortcut
        assert [] == ids(book, "days.refund")
        assert [] == ids(book, "policyref")

    def test_editing_a_shortcut_moves_it(self) -> None:
        """A changed or removed shortcut no longer matches; the new one does."""
        book = self.book()
        book.edit_message("m3", shortcut="money")
        assert "m3" == ids(book, "money")[0]
        book.edit_message("m3", shortcut="")
        assert ["m3"] == ids(book, "ref")  # by its text and title now
        book.delete_message("m3")
        assert [] == ids(book, "ref")

    @pytest.mark.parametrize("shortcut", ["two words", "#ref", "tab\t"])
    def test_a_shortcut_is_one_word(self, shortcut: str) -> None:
        """A shortcut with white space or '#' could never be typed after '#': refused."""
        book = self.book()
        with pytest.raises(CannedError) as info:
            book.edit_message("m1", shortcut=shortcut)
        assert "invalid" == info.value.code
        assert "" == book.message("m1").shortcut

    def test_labels_survive_a_snapshot(self) -> None:
        """A book rebuilt from its snapshot keeps titles, shortcuts and readings."""
        book = self.book()
        copy = CannedBook.from_snapshot(book.snapshot())
        assert book.snapshot() == copy.snapshot()
        assert ["orei"] == ids(copy, "おれい")
        assert "m3" == ids(copy, "ref")[0]
