// Accessibility checks of the consumer page, run in the real browser by
// tests/e2e/test_page_accessibility.py (Lighthouse/axe-style rules, written out so each one
// is readable and fails with the element it found). Returns a list of violations (strings).
(function () {
  "use strict";
  var out = [];
  function describe(el) {
    var id = el.id ? "#" + el.id : "";
    var cls = el.className && typeof el.className === "string" ? "." + el.className.split(" ").join(".") : "";
    return el.tagName.toLowerCase() + id + cls;
  }
  function visible(el) {
    var style = getComputedStyle(el);
    if (style.display === "none" || style.visibility === "hidden") { return false; }
    var r = el.getBoundingClientRect();
    return r.width > 0 && r.height > 0;
  }
  // html[lang]
  var lang = document.documentElement.getAttribute("lang") || "";
  if (!/^(en|zh-CN)$/.test(lang)) { out.push("html[lang] is " + JSON.stringify(lang)); }
  // title
  if (!document.title.trim()) { out.push("document has no title"); }
  // landmarks: one main; banner and contentinfo outside it
  var mains = document.querySelectorAll("main");
  if (mains.length !== 1) { out.push(mains.length + " main landmarks, want 1"); }
  ["body > header", "body > footer"].forEach(function (sel) {
    if (!document.querySelector(sel)) { out.push("no landmark " + sel); }
  });
  // headings: one h1, first heading h1, no level skipped
  var headings = Array.prototype.slice.call(document.querySelectorAll("h1,h2,h3,h4,h5,h6"));
  var h1s = headings.filter(function (h) { return h.tagName === "H1"; });
  if (h1s.length !== 1) { out.push(h1s.length + " h1 elements, want 1"); }
  var last = 0;
  headings.forEach(function (h) {
    var level = Number(h.tagName[1]);
    if (last === 0 && level !== 1) { out.push("first heading is " + describe(h)); }
    if (last !== 0 && level > last + 1) { out.push("heading level skipped at " + describe(h)); }
    if (!h.textContent.trim()) { out.push("empty heading " + describe(h)); }
    last = level;
  });
  // images: alt text, and the picture really loaded (served, allowed by the CSP)
  document.querySelectorAll("img").forEach(function (img) {
    if (!img.hasAttribute("alt") || !img.getAttribute("alt").trim()) { out.push("img without alt: " + img.src); }
    if (!img.complete || img.naturalWidth === 0) { out.push("img did not load: " + img.src); }
  });
  // every form control has an accessible name
  document.querySelectorAll("input, select, textarea, button").forEach(function (el) {
    if (el.type === "hidden") { return; }
    var named = false;
    if (el.tagName === "BUTTON") { named = el.textContent.trim() !== ""; }
    if (el.getAttribute("aria-label")) { named = true; }
    var by = el.getAttribute("aria-labelledby");
    if (by && document.getElementById(by) && document.getElementById(by).textContent.trim()) { named = true; }
    if (el.id) {
      var label = document.querySelector('label[for="' + el.id + '"]');
      if (label && label.textContent.trim()) { named = true; }
    }
    if (el.closest("label") && el.closest("label").textContent.trim()) { named = true; }
    if (!named) { out.push("form control without a label: " + describe(el)); }
  });
  // links have text
  document.querySelectorAll("a[href]").forEach(function (a) {
    if (!a.textContent.trim() && !a.getAttribute("aria-label")) { out.push("link without text: " + describe(a)); }
  });
  // ids are unique
  var seen = {};
  document.querySelectorAll("[id]").forEach(function (el) {
    if (seen[el.id]) { out.push("duplicate id " + el.id); }
    seen[el.id] = true;
  });
  // contrast of every visible text node (WCAG 2.x relative luminance; AA: 4.5, large 3)
  function parse(color) {
    var m = color.match(/rgba?\(([^)]+)\)/);
    if (!m) { return [0, 0, 0, 0]; }
    var p = m[1].split(/[ ,\/]+/).filter(Boolean).map(Number);
    return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
  }
  function over(top, bottom) {
    var a = top[3];
    return [0, 1, 2].map(function (i) { return top[i] * a + bottom[i] * (1 - a); }).concat([1]);
  }
  function background(el) {
    var layers = [];
    for (var node = el; node && node.nodeType === 1; node = node.parentElement) {
      var style = getComputedStyle(node);
      if (style.backgroundImage && style.backgroundImage !== "none") { return null; }
      layers.push(parse(style.backgroundColor));
    }
    var color = [255, 255, 255, 1];
    for (var i = layers.length - 1; i >= 0; i--) { color = over(layers[i], color); }
    return color;
  }
  function luminance(c) {
    var v = [0, 1, 2].map(function (i) {
      var s = c[i] / 255;
      return s <= 0.03928 ? s / 12.92 : Math.pow((s + 0.055) / 1.055, 2.4);
    });
    return 0.2126 * v[0] + 0.7152 * v[1] + 0.0722 * v[2];
  }
  var walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  var checked = 0;
  while (walker.nextNode()) {
    var text = walker.currentNode;
    if (!text.textContent.trim()) { continue; }
    var el = text.parentElement;
    if (!el || !visible(el) || el.closest("script,style,noscript,[hidden]")) { continue; }
    if (el.closest(".skip") && document.activeElement !== el.closest(".skip")) { continue; }  // off screen until focused
    var style = getComputedStyle(el);
    var bg = background(el);
    if (bg === null) { out.push("text over an image, contrast unknown: " + describe(el)); continue; }
    var fg = over(parse(style.color), bg);
    var l1 = luminance(fg), l2 = luminance(bg);
    var ratio = (Math.max(l1, l2) + 0.05) / (Math.min(l1, l2) + 0.05);
    var size = parseFloat(style.fontSize), weight = Number(style.fontWeight) || 400;
    var large = size >= 24 || (size >= 18.66 && weight >= 700);
    var need = large ? 3 : 4.5;
    checked++;
    if (ratio < need) {
      out.push("contrast " + ratio.toFixed(2) + " < " + need + " for " + JSON.stringify(text.textContent.trim().slice(0, 40)) + " in " + describe(el));
    }
  }
  if (checked < 5) { out.push("only " + checked + " text nodes checked"); }
  // the verdict is told in words and an icon, not by colour alone
  var verdict = document.getElementById("verdict") || document.getElementById("error");
  if (verdict) {
    var icon = verdict.querySelector(".icon");
    var title = verdict.querySelector("h1");
    if (!icon || !icon.textContent.trim()) { out.push("verdict has no icon"); }
    if (!title || !title.textContent.trim()) { out.push("verdict has no title text"); }
  }
  return out;
})();
