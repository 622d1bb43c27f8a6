// Accessibility checks run inside the console's page by test_pages.py.

function controlsWithoutName() {
  return [...document.querySelectorAll("a, button, input, select, [tabindex]")]
    .filter((e) => e.offsetParent !== null || e === document.activeElement)
    .filter((e) => !(e.getAttribute("aria-label") || (e.labels && e.labels.length) || e.textContent.trim() || e.title))
    .map((e) => e.outerHTML.slice(0, 120));
}

function luminance(color) {
  return color.slice(0, 3).map((v) => {
    v /= 255;
    return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
  }).reduce((sum, v, i) => sum + v * [0.2126, 0.7152, 0.0722][i], 0);
}

function rgb(text) {
  return (text.match(/[\d.]+/g) || []).map(Number);
}

function paintedBehind(e) {
  for (; e; e = e.parentElement) {
    const c = rgb(getComputedStyle(e).backgroundColor);
    if (c.length === 3 || c[3] > 0) return c;
  }
  return [255, 255, 255];
}

function lowContrast() {
  const bad = [];
  for (const e of document.querySelectorAll("body *")) {
    const ownText = [...e.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    const style = getComputedStyle(e);
    if (!ownText || e.offsetParent === null || style.visibility === "hidden" || e.closest(".toast")) continue;
    const a = luminance(rgb(style.color)), b = luminance(paintedBehind(e));
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    if (ratio < 4.5) bad.push(`${e.tagName}.${e.className} "${e.textContent.trim().slice(0, 30)}" ${ratio.toFixed(2)}`);
  }
  return bad;
}
