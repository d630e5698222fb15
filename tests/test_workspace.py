"""The agent's workspace beside the chat: visitor panel, ticket views, satisfaction ratings."""

from __future__ import annotations

import pytest
from trio.testing import MockClock

from engine import Engine, EngineError, Rating, TicketKind, Visitor

from .helpers import offer_for, settle

MINA = Visitor(
    name="Mina",
    email="Mina@Example.com",
    browser="Firefox",
    os="Linux",
    location="Osaka",
    visitor_id="u-mina",  # the embedding application signed her in
)


async def finished_chat(engine: Engine, agent_id: str, question: str, visitor: Visitor) -> str:
    """Run one chat through accept and end; returns its chat id."""
    async with engine.connect_agent(agent_id) as agent:
        await agent.set_status("online")
        async with engine.open_chat(department="sales", question=question, visitor=visitor) as v:
            await agent.accept((await offer_for(agent, v.chat_id)).offer_id)
            await v.send(f"about {question}")
            await agent.end_chat(v.chat_id)
            return v.chat_id


class TestVisitorPanel:
    async def test_panel_shows_visitor_and_history(
        self, engine: Engine, autojump_clock: MockClock
    ) -> None:
        """The panel has the visitor's details and recent chats and tickets (linked by the
        verified visitor id), newest first."""
        first = await finished_chat(engine, "ann", "shipping", MINA)
        second = await finished_chat(engine, "ann", "returns", MINA)
        async with engine.connect_agent("ann") as ann:
            await ann.set_status("online")
            again = Visitor(name="Mina", browser="Chrome", visitor_id="u-mina")
            async with engine.open_chat(department="sales", question="invoice", visitor=again) as v:
                offer = await offer_for(ann, v.chat_id)
                panel = await ann.visitor_panel(v.chat_id)  # offered, not yet accepted: allowed
                assert (panel.question, panel.visitor.browser) == ("invoice", "Chrome")
                assert [c.chat_id for c in panel.recent_chats] == [second, first]
                assert [t.chat_id for t in panel.recent_tickets] == [second, first]
                page = await ann.visitor_panel(v.chat_id, limit=1, offset=1)
                assert [t.chat_id for t in page.recent_tickets] == [first]
                assert [
                    t.chat_id for t in (await ann.visitor_panel(v.chat_id, offset=2)).recent_tickets
                ] == []
                await ann.accept(offer.offer_id)
                assert (await ann.visitor_panel(v.chat_id)).chat_id == v.chat_id

    async def test_panel_lists_live_chats_first(
        self, engine: Engine, autojump_clock: MockClock
    ) -> None:
        """A visitor's other live chat is listed, before ended ones, with its state."""
        async with engine.connect_agent("ann") as ann:
            await ann.set_status("online")
            async with (
                engine.open_chat(department="sales", question="one", visitor=MINA) as v1,
                engine.open_chat(department="sales", question="two", visitor=MINA) as v2,
            ):
                await ann.accept((await offer_for(ann, v1.chat_id)).offer_id)
                panel = await ann.visitor_panel(v1.chat_id)
                assert [(c.chat_id, c.state) for c in panel.recent_chats] == [
                    (v2.chat_id, "offered")
                ]

    async def test_panel_refused_to_outsiders(
        self, engine: Engine, autojump_clock: MockClock
    ) -> None:
        """An agent neither in nor offered the chat cannot open its panel."""
        async with engine.connect_agent("ann") as ann, engine.connect_agent("cy") as cy:
            await ann.set_status("online")
            async with engine.open_chat(department="sales", question="q", visitor=MINA) as v:
                with pytest.raises(EngineError) as err:
                    await cy.visitor_panel(v.chat_id)
                assert err.value.code == "not_in_chat"
                with pytest.raises(EngineError) as err:
                    await ann.visitor_panel(v.chat_id, limit=0)
                assert err.value.code == "invalid_field"


class TestRatings:
    async def test_rate_once_and_report(self, engine: Engine, autojump_clock: MockClock) -> None:
        """A visitor rates an ended chat once; the report counts it for the agent and department."""
        chat_id = await finished_chat(engine, "ann", "shipping", MINA)
        ticket = await engine.rate_chat(chat_id, "good", "quick answer")
        assert (ticket.rating and ticket.rating.value, ticket.rating_comment) == (
            "good",
            "quick answer",
        )
        with pytest.raises(EngineError) as err:
            await engine.rate_chat(chat_id, "bad")
        assert err.value.code == "already_rated"
        assert (await engine.ticket_for_chat(chat_id)).rating_comment == "quick answer"
        report = await engine.rating_report()
        assert report["agents"]["ann"] == {
            "good": 1,
            "neutral": 0,
            "bad": 0,
            "scored": 0,
            "score_sum": 0,
        }
        assert report["departments"]["sales"]["good"] == 1

    async def test_a_score_goes_with_or_stands_for_a_rating(
        self, engine: Engine, autojump_clock: MockClock
    ) -> None:
        """A score of 1 to 5 is kept beside the rating; alone, it stands for one (1-2 bad);
        neither, or a score out of range, is refused."""
        chat_id = await finished_chat(engine, "ann", "shipping", MINA)
        for rating, score, code in ((None, None, "missing_field"), ("good", 6, "invalid_field")):
            with pytest.raises(EngineError) as err:
                await engine.rate_chat(chat_id, rating, score=score)
            assert code == err.value.code
        ticket = await engine.rate_chat(chat_id, None, "slow", score=2)
        assert (Rating.BAD, 2, "slow") == (ticket.rating, ticket.score, ticket.rating_comment)
        report = await engine.rating_report()
        assert (1, 2) == (report["agents"]["ann"]["scored"], report["agents"]["ann"]["score_sum"])

    async def test_rating_a_live_chat_is_refused(
        self, engine: Engine, autojump_clock: MockClock
    ) -> None:
        """A chat that has not ended cannot be rated yet, and a made-up rating is refused."""
        async with engine.connect_agent("ann") as ann:
            await ann.set_status("online")
            async with engine.open_chat(department="sales", question="q", visitor=MINA) as v:
                await ann.accept((await offer_for(ann, v.chat_id)).offer_id)
                with pytest.raises(EngineError) as err:
                    await v.rate("good")
                assert err.value.code == "invalid_state"
                with pytest.raises(EngineError) as err:
                    await v.rate("superb")
                assert err.value.code == "invalid_field"


class TestTicketViews:
    async def test_views_and_mark_handled(self, engine: Engine, autojump_clock: MockClock) -> None:
        """Tickets by department, agent and visitor; a missed chat can be marked handled."""
        done = await finished_chat(engine, "bob", "shipping", MINA)
        async with engine.open_chat(department="support", question="help", visitor=MINA) as v:
            missed_id = v.chat_id  # bob is in his disconnect grace: the chat waits in the queue
        await settle()  # the visitor left while it waited: it is written as a missed chat
        assert [t.chat_id for t in await engine.tickets(agent="bob")] == [done]
        assert [t.chat_id for t in await engine.tickets(department="support")] == [missed_id]
        assert [t.chat_id for t in await engine.tickets(visitor_email="MINA@example.com")] == [
            missed_id,
            done,
        ]
        missed = (await engine.missed_chats())[0]
        assert (missed.chat_id, missed.handled) == (missed_id, False)
        assert missed.id is not None
        assert (await engine.mark_handled(missed.id)).handled is True
        transcript = await engine.ticket_for_chat(done)
        assert transcript.kind is TicketKind.TRANSCRIPT
        assert transcript.id is not None
        with pytest.raises(EngineError) as err:
            await engine.mark_handled(transcript.id)
        assert err.value.code == "invalid_state"
