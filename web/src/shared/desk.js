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
 * `departments` reply without those whose chat is off. Each item is {id, name, online, open,
 * opens_at}: `online` is unknown (null) for an attribute's department the server did not list;
 * `open` is whether it is within its business hours (true when the server does not say), and
 * `opens_at` when it opens next if it is not (seconds since the epoch, or null).
 */
export function widgetDepartments(attribute, listed) {
  const known = new Map((listed || []).map((d) => [d.id, d]));
  const hours = (d) => ({ open: d?.open !== false, opens_at: d?.open === false ? (d.opens_at ?? null) : null });
  if (attribute.length) {
    return attribute.map(({ id, name }) => ({
      id,
      name,
      online: known.has(id) ? known.get(id).online && known.get(id).chat_enabled : null,
      ...hours(known.get(id)),
    }));
  }
  return (listed || []).filter((d) => d.chat_enabled).map((d) => ({ id: d.id, name: d.name, online: d.online, ...hours(d) }));
}

/**
 * What a queued visitor is told (SPEC `queued`): its place, and the estimated wait when the
 * server sent one (`eta`, seconds), rounded to a minute (under a minute: "less than a minute").
 */
export function waitText(position, eta) {
  if (!position) return "Waiting for an agent…";
  const place = `You are number ${position} in line.`;
  if (eta === undefined || eta === null || !Number.isFinite(eta)) return `${place} An agent will be with you soon.`;
  const minutes = Math.round(eta / 60);
  const wait = eta < 60 ? "less than a minute" : minutes === 1 ? "about 1 minute" : `about ${minutes} minutes`;
  return `${place} Estimated wait: ${wait}.`;
}

/**
 * When a closed department opens next, for a person (`opens_at` of the `departments` reply and
 * of an `ended` event with reason closed_hours): "today at 09:00", "tomorrow at 09:00" or
 * "Monday, 6 May at 09:00", in `timeZone` (default: the browser's). Null when it is not known.
 */
export function opensText(opensAt, now = Date.now() / 1000, { locale = undefined, timeZone = undefined } = {}) {
  if (opensAt === undefined || opensAt === null || !Number.isFinite(opensAt)) return null;
  const day = (seconds) => new Intl.DateTimeFormat("en-CA", { timeZone, year: "numeric", month: "2-digit", day: "2-digit" }).format(new Date(seconds * 1000));
  const time = new Intl.DateTimeFormat(locale, { timeZone, hour: "2-digit", minute: "2-digit" }).format(new Date(opensAt * 1000));
  if (day(opensAt) === day(now)) return `today at ${time}`;
  if (day(opensAt) === day(now + 86400)) return `tomorrow at ${time}`;
  const date = new Intl.DateTimeFormat(locale, { timeZone, weekday: "long", day: "numeric", month: "long" }).format(new Date(opensAt * 1000));
  return `${date} at ${time}`;
}

/** Tags as the console's tag field takes them: "refund, vip" -> ["refund", "vip"]. */
export function parseTags(text) {
  return [...new Set(String(text || "").split(",").map((s) => s.trim()).filter(Boolean))].slice(0, 32);
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
