import assert from "node:assert/strict";
import { describe, it } from "node:test";

import {
  cannedMeta,
  opensText,
  parseDepartmentsAttribute,
  parseTags,
  ratingOfScore,
  waitText,
  widgetDepartments,
} from "../src/shared/desk.js";

describe("ratingOfScore", () => {
  it("reads 4-5 as good, 3 as neutral, 1-2 as bad", () => {
    assert.deepEqual([1, 2, 3, 4, 5].map(ratingOfScore), ["bad", "bad", "neutral", "good", "good"]);
  });
});

describe("cannedMeta", () => {
  it("names the category and the department by their names", () => {
    const names = new Map([["sales", "Sales"]]);
    const suggestion = { message_id: "m", text: "Hi", category: "greet", category_name: "Greetings", department: "sales" };
    assert.deepEqual(cannedMeta(suggestion, names), { category: "Greetings", department: "Sales" });
  });

  it("says a shared message is for all departments, and falls back to ids", () => {
    assert.deepEqual(cannedMeta({ category: "greet", department: null }), { category: "greet", department: "All departments" });
    assert.deepEqual(cannedMeta({ category: "greet", department: "billing" }), { category: "greet", department: "billing" });
  });
});

describe("widgetDepartments", () => {
  const listed = [
    { id: "billing", name: "Billing", chat_enabled: true, online: false },
    { id: "closed", name: "Closed", chat_enabled: false, online: false },
    { id: "sales", name: "Sales", chat_enabled: true, online: true },
  ];

  it("offers the server's departments whose chat is on", () => {
    assert.deepEqual(widgetDepartments([], listed), [
      { id: "billing", name: "Billing", online: false, open: true, opens_at: null },
      { id: "sales", name: "Sales", online: true, open: true, opens_at: null },
    ]);
  });

  it("lets the page's attribute override the list, keeping what the server knows", () => {
    const attribute = parseDepartmentsAttribute("sales:Sales team, closed , mars:Mars");
    assert.deepEqual(widgetDepartments(attribute, listed), [
      { id: "sales", name: "Sales team", online: true, open: true, opens_at: null },
      { id: "closed", name: "closed", online: false, open: true, opens_at: null },
      { id: "mars", name: "Mars", online: null, open: true, opens_at: null },
    ]);
  });

  it("copes with no server list at all", () => {
    assert.deepEqual(widgetDepartments([], undefined), []);
  });
});

describe("business hours in the widget's list", () => {
  it("keeps whether a department is open and when it opens", () => {
    const listed = [
      { id: "sales", name: "Sales", chat_enabled: true, online: false, open: false, opens_at: 1715673600 },
      { id: "night", name: "Night", chat_enabled: true, online: false, open: false },
    ];
    assert.deepEqual(widgetDepartments([], listed), [
      { id: "sales", name: "Sales", online: false, open: false, opens_at: 1715673600 },
      { id: "night", name: "Night", online: false, open: false, opens_at: null },
    ]);
  });
});

describe("waitText", () => {
  it("says the place in line and the estimated wait in minutes", () => {
    assert.equal(waitText(3, 240), "You are number 3 in line. Estimated wait: about 4 minutes.");
    assert.equal(waitText(1, 70), "You are number 1 in line. Estimated wait: about 1 minute.");
    assert.equal(waitText(1, 20), "You are number 1 in line. Estimated wait: less than a minute.");
  });

  it("leaves the wait out when there is no estimate", () => {
    assert.equal(waitText(2, undefined), "You are number 2 in line. An agent will be with you soon.");
    assert.equal(waitText(null, null), "Waiting for an agent…");
  });
});

describe("opensText", () => {
  const now = Date.UTC(2024, 4, 14, 18, 0) / 1000; // Tuesday 18:00 UTC
  const utc = { locale: "en-GB", timeZone: "UTC" };

  it("says today, tomorrow or the day", () => {
    assert.equal(opensText(Date.UTC(2024, 4, 14, 20, 30) / 1000, now, utc), "today at 20:30");
    assert.equal(opensText(Date.UTC(2024, 4, 15, 9, 0) / 1000, now, utc), "tomorrow at 09:00");
    assert.equal(opensText(Date.UTC(2024, 4, 20, 9, 0) / 1000, now, utc), "Monday 20 May at 09:00");
  });

  it("knows nothing without a time", () => {
    assert.equal(opensText(null, now, utc), null);
  });
});

describe("parseTags", () => {
  it("reads comma-separated text, without repeats", () => {
    assert.deepEqual(parseTags("refund, vip, refund"), ["refund", "vip"]);
    assert.deepEqual(parseTags(""), []);
  });
});
