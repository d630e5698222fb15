"""Over the wire, across a crash: visitors resume with their tokens, agents sign in to their chats.

The engine is left as a crash leaves it (`end_chats_on_exit=False`); a new engine and a new gateway
are opened on the same file, and the clients reconnect as SPEC.md section 10 says.
"""

from __future__ import annotations

from pathlib import Path

from trio.testing import MockClock

from engine import EngineConfig

from .gateway_harness import accept, open_chat, open_gateway, settle
from .test_recovery import CONFIG, crashing


async def test_visitor_resumes_and_agent_signs_in_after_a_crash(
    db_path: Path, autojump_clock: MockClock
) -> None:
    """The resume token works after a restart, the missed lines are replayed, a resent message
    is not repeated, and the agent finds its chat (chat_assigned) and goes on."""
    config: EngineConfig = CONFIG
    async with crashing(db_path, config) as (engine, _), open_gateway(engine) as h:
        token = await h.token("ann")
        async with h.connect(role="agent", token=token) as ann, h.visitor() as vera:
            await ann.request("set_status", status="online")
            chat_id = await open_chat(vera)
            opened = await vera.wait_for("chat_opened")
            resume_token = opened.fields["resume_token"]
            await accept(ann, chat_id)
            first = await vera.request("send", text="hello", client_msg_id="m-1")
            await ann.request("send", chat_id=chat_id, text="hi Vera")
            await settle()
    async with crashing(db_path, config) as (engine, _), open_gateway(engine) as h:
        await h.gateway.restore()
        async with h.visitor(resume_token=resume_token, last_seq=first["seq"]) as vera:
            assert vera.hello["resumed"] is True
            await vera.wait_for("chat_opened", chat_id=chat_id)
            missed = await vera.wait_for("message")
            assert (missed.fields["text"], missed.fields["seq"]) == ("hi Vera", first["seq"] + 1)
            again = await vera.request("send", text="hello", client_msg_id="m-1")
            assert again["seq"] == first["seq"]
            async with h.connect(role="agent", token=token) as ann:
                assert (chat_id,) == ann.hello["chats"]
                assigned = await ann.wait_for("chat_assigned")
                assert assigned.fields == {"chat_id": chat_id, "role": "owner"}
                await ann.request("send", chat_id=chat_id, text="still here")
                line = await vera.wait_for("message")
                assert line.fields["text"] == "still here"
