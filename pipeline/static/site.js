// Read-along for an episode page: the segment being spoken is highlighted (aria-current)
// and followed; timestamps, chapters and #t=SECONDS / #s12 in the address seek the player.
// Without this script every page still reads in full and its timestamps open the MP3.
(function () {
  "use strict";
  var audio = document.getElementById("player");
  if (!audio) return;
  var segments = Array.prototype.slice.call(document.querySelectorAll("span[data-start]"));
  var starts = segments.map(function (s) { return parseFloat(s.dataset.start); });
  var follow = document.getElementById("follow");
  var reduced = window.matchMedia("(prefers-reduced-motion: reduce)");
  var current = null;
  var moving = false;  // the page scrolling itself, not the reader

  follow.parentNode.hidden = false;
  if (reduced.matches) follow.checked = false;

  function segmentAt(seconds) {
    var low = 0, high = starts.length - 1, found = -1;
    while (low <= high) {
      var middle = (low + high) >> 1;
      if (starts[middle] <= seconds + 0.05) { found = middle; low = middle + 1; } else { high = middle - 1; }
    }
    return found < 0 ? null : segments[found];
  }

  function show(seconds) {
    var segment = segmentAt(seconds);
    if (segment === current) return;
    if (current) current.removeAttribute("aria-current");
    current = segment;
    if (!segment) return;
    segment.setAttribute("aria-current", "true");
    if (follow.checked) {
      moving = true;
      segment.scrollIntoView({ block: "center", behavior: reduced.matches ? "auto" : "smooth" });
      window.setTimeout(function () { moving = false; }, 800);
    }
  }

  function seek(seconds) {
    if (!isFinite(seconds) || seconds < 0) return;
    var go = function () { audio.currentTime = seconds; show(seconds); };
    if (audio.readyState >= 1) go(); else audio.addEventListener("loadedmetadata", go, { once: true });
    show(seconds);
  }

  function fromAddress() {
    var moment = /^#t=([0-9.]+)/.exec(location.hash);
    if (moment) return seek(parseFloat(moment[1]));
    var segment = /^#s([0-9]+)$/.exec(location.hash);
    var target = segment && document.getElementById("s" + segment[1]);
    if (target) seek(parseFloat(target.dataset.start));
  }

  document.addEventListener("click", function (event) {
    var link = event.target.closest("a[data-t]");
    if (!link) return;
    event.preventDefault();
    var seconds = parseFloat(link.dataset.t);
    history.replaceState(null, "", "#t=" + seconds);
    seek(seconds);
    audio.focus();
  });
  // The reader scrolling away stops the following; the box says so, and brings it back.
  ["wheel", "touchmove"].forEach(function (kind) {
    window.addEventListener(kind, function () { if (!moving) follow.checked = false; }, { passive: true });
  });
  window.addEventListener("keydown", function (event) {
    if (["PageUp", "PageDown", "Home", "End", "ArrowUp", "ArrowDown", " "].indexOf(event.key) >= 0
        && event.target === document.body) follow.checked = false;
  });
  follow.addEventListener("change", function () { current = null; show(audio.currentTime); });
  audio.addEventListener("timeupdate", function () { show(audio.currentTime); });
  audio.addEventListener("seeked", function () { show(audio.currentTime); });
  window.addEventListener("hashchange", fromAddress);
  fromAddress();
})();
