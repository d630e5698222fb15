/**
 * Small pure helpers the console, the widget and the admin page share: how a score reads as a
 * rating, how a canned suggestion is labelled, which departments a widget offers. No DOM here,
 * so node's test runner loads this module as it is.
 */

/** The rating word a 1-5 score stands for (SPEC `rate`): 4-5 good, 3 neutral, 1-2 bad. */
export function ratingOfScore(score) {
  if (score >= 4) return "good";
  return score === 3 ? "neutral" : "bad";
}

/** What the console's `#` list shows beside a suggestion: its category and its department. */
export function cannedMeta(suggestion, departmentNames = new Map()) {
  const department = suggestion.department;
  return {
    category: suggestion.category_name || suggestion.category || "",
    department: department ? departmentNames.get(department) || department : "All departments",
  };
}

/**
 * The departments a widget offers the visitor: the `data-departments` attribute when the page
 * set it (it overrides the server's list, and its ids are trusted as given), else the server's
 * `departments` reply without those whose chat is off. Each item is {id, name, online}, where
 * `online` is unknown (null) for an attribute's department the server did not list.
 */
export function widgetDepartments(attribute, listed) {
  const known = new Map((listed || []).map((d) => [d.id, d]));
  if (attribute.length) {
    return attribute.map(({ id, name }) => ({ id, name, online: known.has(id) ? known.get(id).online && known.get(id).chat_enabled : null }));
  }
  return (listed || []).filter((d) => d.chat_enabled).map(({ id, name, online }) => ({ id, name, online }));
}

/** Parses a `data-departments` attribute: "sales:Sales, support:Support" -> [{id, name}]. */
export function parseDepartmentsAttribute(text) {
  return (text || "")
    .split(",")
    .map((pair) => pair.trim())
    .filter(Boolean)
    .map((pair) => {
      const [id, name] = pair.split(":");
      return { id: id.trim(), name: (name || id).trim() };
    });
}
