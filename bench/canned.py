"""Benchmark of canned-message suggestions: lookup latency over a realistic book.

Builds a `CannedBook` of mixed English and Japanese canned messages spread over a few
departments and categories, with per-agent use counts, then times `CannedBook.suggest` for drafts
ending in ``#`` and a query of 1 to 6 characters: prefixes of corpus words (most lookups), pieces
from inside words, upper-case and full-width variants, and queries that match nothing. Each
lookup is timed alone with `time.perf_counter_ns`, after an untimed warm-up, and the script prints
one JSON object with the percentiles in milliseconds.

With ``--labelled F`` a fraction F of the messages also get a title, a reading and a shortcut
(``s1234``), searched as well, and a tenth of the queries are shortcuts; the corpus and the
other queries stay the same as without it, so the two runs compare.

Run: ``.venv/bin/python -m bench.canned [--messages N] [--lookups N] [--seed S] [--labelled F]``.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from collections.abc import Sequence

from engine.canned.book import CannedBook
from engine.canned.records import CannedCategory, CannedMessage, CannedUse

TARGET_MS = 1.0
WARMUP_LOOKUPS = 200

ENGLISH = """
thank you for contacting our support team today we are happy to help with your order refund
request please allow three five business days the money returned original payment method
could share number confirmation email address so that can look into this issue right away
shipping delivery tracking package carrier arrived damaged replacement sent free charge
account password reset link expires hours login sign two factor authentication settings
invoice billing subscription cancel renewal plan upgrade downgrade monthly yearly discount
coupon code applied checkout cart product available stock warehouse dispatched estimated
sorry inconvenience apologize delay appreciate patience transfer colleague department
specialist will contact shortly anything else assist have great day welcome back browser
cache cookies clear restart application update version mobile desktop receipt customer
warranty repair exchange return label policy store credit gift card balance promotion
""".split()

JAPANESE = """
お問い合わせ ありがとうございます ご返金 手続き 配送状況 確認 アカウント パスワード 再設定
請求書 お支払い キャンセル 少々お待ちください ご注文番号 メールアドレス 送信 いたします について
お客様 ログイン サポート 担当者 変更 解約 領収書 発送 到着予定 商品 交換 返品 在庫 お届け
ご不便 おかけして 申し訳ございません 恐れ入りますが 教えてください 確認いたしました 完了
クーポン 割引 プラン 更新 月額 年額 無料 ポイント 会員登録 ご利用 ブラウザ キャッシュ
アプリ 最新バージョン 再起動 お試しください 保証 修理 カード 残高 キャンペーン 本日 明日
""".split()

PLACEHOLDERS = ("{visitor.name}", "{agent.name}", "{department.name}")
DEPARTMENTS: tuple[str | None, ...] = ("sales", "support", "billing", "shipping", None)
CATEGORY_NAMES = (
    "Greetings",
    "Refunds",
    "Shipping",
    "Accounts",
    "Billing",
    "Technical",
    "Closing",
    "挨拶",
)
AGENT_DEPARTMENTS: tuple[tuple[str, ...], ...] = (
    ("support",),
    ("sales", "billing"),
    ("support", "shipping"),
    ("sales", "support", "billing", "shipping"),
    ("billing",),
)
NO_MATCH = ("zqx", "qzj", "xkcdq", "wvwv", "jjq", "鬱蛙", "ゑゐ", "ヴョ", "zz", "qq", "凸凹")


def _english(rng: random.Random) -> str:
    words = rng.choices(ENGLISH, k=rng.randint(6, 24))
    if rng.random() < 0.3:
        words.insert(rng.randrange(len(words)), rng.choice(PLACEHOLDERS))
    if rng.random() < 0.2:
        words.append(f"#{rng.randint(100, 99999)}")
    return " ".join(words).capitalize() + rng.choice((".", "!", "?", "."))


def _japanese(rng: random.Random) -> str:
    pieces = rng.choices(JAPANESE, k=rng.randint(3, 9))
    if rng.random() < 0.3:
        pieces.insert(0, rng.choice(PLACEHOLDERS) + "様、")
    if rng.random() < 0.2:
        pieces.insert(rng.randrange(len(pieces)), rng.choice(ENGLISH).title())
    return "".join(pieces) + rng.choice(("。", "。", "\uff01"))


def _labels(rng: random.Random, n: int) -> dict[str, str]:
    """A title, its reading and a shortcut for message ``n``."""
    if rng.random() < 0.5:
        title = " ".join(rng.choices(ENGLISH, k=rng.randint(1, 3))).title()
        reading = ""
    else:
        title = "".join(rng.choices(JAPANESE, k=rng.randint(1, 2)))
        reading = "".join(rng.choices("あいうえおかきくけこさしすせそたちつてとなにぬねの", k=6))
    return {"title": title, "reading": reading, "shortcut": f"s{n}"}


def build(*, messages: int, seed: int, labelled: float = 0.0) -> tuple[CannedBook, list[str]]:
    """A book of ``messages`` canned messages, and the ids of its messages."""
    rng = random.Random(seed)
    label_rng = random.Random(seed + 2)  # apart, so that labels leave the corpus as it is
    categories = [CannedCategory(id=f"c{n}", name=name) for n, name in enumerate(CATEGORY_NAMES)]
    made: list[CannedMessage] = []
    for n in range(messages):
        roll = rng.random()
        if roll < 0.5:
            text = _english(rng)
        elif roll < 0.85:
            text = _japanese(rng)
        else:
            text = _japanese(rng) + " / " + _english(rng)
        made.append(
            CannedMessage(
                id=f"cm{n:06d}",
                text=text,
                category=rng.choice(categories).id,
                department=rng.choice(DEPARTMENTS),
                created_at=1_700_000_000.0 + n * 37.0 + rng.random(),
                **(_labels(label_rng, n) if label_rng.random() < labelled else {}),
            )
        )
    uses: list[CannedUse] = []
    for agent in range(len(AGENT_DEPARTMENTS)):
        for message in rng.sample(made, k=min(len(made), rng.randint(50, 300))):
            count = max(1, int(rng.paretovariate(1.2)))
            uses.append(CannedUse(agent_id=f"agent{agent}", message_id=message.id, count=count))
    book = CannedBook(categories=categories, messages=made, uses=uses)
    return book, [message.id for message in made]


def _queries(rng: random.Random, count: int) -> list[str]:
    """Realistic queries of 1 to 6 characters."""
    queries: list[str] = []
    for _ in range(count):
        roll = rng.random()
        if roll < 0.7:  # the agent types the start of a word
            word = rng.choice(ENGLISH if rng.random() < 0.55 else JAPANESE)
            query = word[: rng.randint(1, min(6, len(word)))]
        elif roll < 0.8:  # a piece from inside a word
            word = rng.choice(ENGLISH + JAPANESE)
            start = rng.randrange(len(word))
            query = word[start : start + rng.randint(1, 6)]
        elif roll < 0.9:  # upper case or full width
            word = rng.choice(ENGLISH)[: rng.randint(1, 6)]
            if rng.random() < 0.5:
                query = word.upper()
            else:
                query = "".join(chr(ord(ch) + 0xFEE0) for ch in word)
        else:  # nothing matches
            query = rng.choice(NO_MATCH)
        queries.append(query)
    return queries


def _percentile(ordered: Sequence[int], fraction: float) -> float:
    """The nearest-rank percentile of sorted nanoseconds, in milliseconds."""
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1] / 1e6


def run(*, messages: int, lookups: int, seed: int, labelled: float = 0.0) -> dict[str, object]:
    """Build the book, time ``lookups`` suggestions, and return the figures."""
    if messages < 1 or lookups < 1:
        raise ValueError("messages and lookups must be at least 1")
    started = time.perf_counter_ns()
    book, _ = build(messages=messages, seed=seed, labelled=labelled)
    build_ms = (time.perf_counter_ns() - started) / 1e6
    rng = random.Random(seed + 1)
    agents = [(f"agent{n}", departments) for n, departments in enumerate(AGENT_DEPARTMENTS)]
    greetings = ("", "Thanks! ", "Hello {visitor.name}, ", "お待たせしました。")

    def lookup(query: str) -> int:
        agent_id, departments = rng.choice(agents)
        draft = rng.choice(greetings) + "#" + query
        begun = time.perf_counter_ns()
        book.suggest(draft, departments=departments, agent_id=agent_id)
        return time.perf_counter_ns() - begun

    shortcut_rng = random.Random(seed + 3)

    def queries(count: int) -> list[str]:
        made = _queries(rng, count)
        if labelled:  # a tenth are shortcuts (of messages that may or may not have them)
            for at in range(0, len(made), 10):
                made[at] = f"s{shortcut_rng.randrange(messages)}"
        return made

    for query in queries(WARMUP_LOOKUPS):
        lookup(query)
    timings = sorted(lookup(query) for query in queries(lookups))
    p99 = _percentile(timings, 0.99)
    return {
        "name": "canned_suggest",
        "figure": round(p99, 4),
        "unit": "ms",
        "p50_ms": round(_percentile(timings, 0.50), 4),
        "p99_ms": round(p99, 4),
        "max_ms": round(timings[-1] / 1e6, 4),
        "lookups": lookups,
        "messages": messages,
        "labelled": labelled,
        "build_ms": round(build_ms, 1),
        "target": f"p99 < {TARGET_MS:g} ms",
        "pass": p99 < TARGET_MS,
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.canned",
        description="Time canned-message suggestions and print one JSON object.",
    )
    parser.add_argument(
        "--messages", type=int, default=10_000, help="canned messages in the book (default 10000)"
    )
    parser.add_argument("--lookups", type=int, default=5_000, help="timed lookups (default 5000)")
    parser.add_argument(
        "--seed", type=int, default=1, help="seed of the corpus and the queries (default 1)"
    )
    parser.add_argument(
        "--labelled",
        type=float,
        default=0.0,
        help="the fraction of messages with a title, reading and shortcut (default 0)",
    )
    args = parser.parse_args(argv)
    if args.messages < 1 or args.lookups < 1:
        parser.error("--messages and --lookups must be at least 1")
    if not 0.0 <= args.labelled <= 1.0:
        parser.error("--labelled must be between 0 and 1")
    print(
        json.dumps(
            run(
                messages=args.messages,
                lookups=args.lookups,
                seed=args.seed,
                labelled=args.labelled,
            )
        )
    )


if __name__ == "__main__":
    main()
