import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { cannedMeta, parseDepartmentsAttribute, ratingOfScore, widgetDepartments } from "../src/shared/desk.js";

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
      { id: "billing", name: "Billing", online: false },
      { id: "sales", name: "Sales", online: true },
    ]);
  });

  it("lets the page's attribute override the list, keeping what the server knows", () => {
    const attribute = parseDepartmentsAttribute("sales:Sales team, closed , mars:Mars");
    assert.deepEqual(widgetDepartments(attribute, listed), [
      { id: "sales", name: "Sales team", online: true },
      { id: "closed", name: "closed", online: false },
      { id: "mars", name: "Mars", online: null },
    ]);
  });

  it("copes with no server list at all", () => {
    assert.deepEqual(widgetDepartments([], undefined), []);
  });
});
