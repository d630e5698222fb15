/** The browser and operating system from a user agent string ("Firefox 128", "Linux"). */
export function describeAgent(ua = navigator.userAgent) {
  const browsers = [
    [/Edg\/(\d+)/, "Edge"],
    [/OPR\/(\d+)/, "Opera"],
    [/Firefox\/(\d+)/, "Firefox"],
    [/(?:Chrome|Chromium)\/(\d+)/, "Chrome"],
    [/Version\/(\d+).*Safari/, "Safari"],
  ];
  let browser = "";
  for (const [pattern, name] of browsers) {
    const match = ua.match(pattern);
    if (match) {
      browser = `${name} ${match[1]}`;
      break;
    }
  }
  const systems = [
    [/Windows NT/, "Windows"],
    [/Android/, "Android"],
    [/iPhone|iPad|iPod/, "iOS"],
    [/Mac OS X/, "macOS"],
    [/CrOS/, "ChromeOS"],
    [/Linux/, "Linux"],
  ];
  const os = (systems.find(([pattern]) => pattern.test(ua)) || [null, ""])[1];
  return { browser, os };
}

/** The visitor's place as the browser knows it without asking: its time zone ("Europe/Berlin"). */
export function describeLocation() {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || "";
  } catch {
    return "";
  }
}
