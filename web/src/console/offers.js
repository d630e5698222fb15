/**
 * Offer popups: one card per open offer (a new chat, a transfer or an invite) with the visitor's
 * name and question, a countdown to `expires_in`, and accept / decline. The ringtone plays while
 * any open offer says it should ring and the agent's ringtone is on.
 */
import { errorText, h, replace } from "../shared/dom.js";

const KIND_TITLE = { chat: "New chat", transfer: "Transfer request", invite: "Invitation" };

export class OfferPopups {
  constructor(app) {
    this.app = app;
    this.node = h("section", { class: "offers", "aria-label": "Offers", "aria-live": "assertive" });
    this.timer = null;
  }

  clear() {
    clearInterval(this.timer);
    this.timer = null;
  }

  render() {
    const { offers } = this.app.state;
    replace(this.node, [...offers.values()].map((offer) => this.card(offer)));
    const ring = this.app.state.ringtone && [...offers.values()].some((offer) => offer.ringtone !== false);
    if (ring) this.app.ringtone.start();
    else this.app.ringtone.stop();
    if (offers.size && !this.timer) this.timer = setInterval(() => this.tick(), 250);
    if (!offers.size) this.clear();
    this.tick();
  }

  card(offer) {
    const visitor = offer.visitor || {};
    const meta = [visitor.email, visitor.location].filter(Boolean).join(" · ");
    const accept = h("button", { class: "primary", onclick: () => this.answer(offer, "accept") }, "Accept");
    const decline = h("button", { class: "ghost", onclick: () => this.answer(offer, "decline") }, "Decline");
    return h(
      "article",
      { class: `offer offer-${offer.kind}`, dataset: { offer: offer.offer_id } },
      h(
        "header",
        {},
        h("span", { class: "offer-kind" }, KIND_TITLE[offer.kind] || "Offer"),
        h("span", { class: "offer-dept", title: offer.department }, this.app.departmentName(offer.department)),
        h("span", { class: "countdown", dataset: { countdown: offer.offer_id } }),
      ),
      h("div", { class: "offer-visitor" }, visitor.name || "Visitor"),
      meta ? h("div", { class: "muted small" }, meta) : null,
      h("blockquote", { class: "offer-question" }, offer.question || "(no question)"),
      offer.note || offer.from_agent
        ? h(
            "p",
            { class: "offer-note" },
            h("strong", { title: offer.from_agent || "" }, `From ${offer.from_agent_name || offer.from_agent || "a colleague"}: `),
            offer.note || "(no note)",
          )
        : null,
      h("div", { class: "progress" }, h("span", { dataset: { bar: offer.offer_id } })),
      h("div", { class: "actions" }, decline, accept),
    );
  }

  tick() {
    const now = Date.now();
    for (const offer of this.app.state.offers.values()) {
      const total = (offer.expires_in || 0) * 1000;
      const left = Math.max(0, total - (now - offer.receivedAt));
      const label = this.node.querySelector(`[data-countdown="${CSS.escape(offer.offer_id)}"]`);
      const bar = this.node.querySelector(`[data-bar="${CSS.escape(offer.offer_id)}"]`);
      if (label) label.textContent = `${Math.ceil(left / 1000)} s`;
      if (bar) bar.style.width = `${total ? (left / total) * 100 : 0}%`;
      if (left <= 0 && now - offer.receivedAt > total + 3000) {
        // the server withdraws an expired offer; if that event was lost, stop showing it
        this.app.state.offers.delete(offer.offer_id);
        this.render();
        return;
      }
    }
  }

  async answer(offer, how) {
    const card = this.node.querySelector(`[data-offer="${CSS.escape(offer.offer_id)}"]`);
    card?.querySelectorAll("button").forEach((button) => (button.disabled = true));
    try {
      const reply = await this.app.client.request(how, { offer_id: offer.offer_id });
      if (how === "accept") {
        this.app.chatView.upsert(reply, { focus: true });
        this.app.show("chats");
      }
    } catch (error) {
      const gone = { offer_taken: "Another agent took it.", stale_offer: "The offer is no longer open." };
      this.app.toast(gone[error.code] || `Could not ${how}: ${errorText(error)}`);
    }
    this.app.state.offers.delete(offer.offer_id);
    this.render();
  }
}
