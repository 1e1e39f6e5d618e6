/* WhatWut team inbox: the little behaviour htmx does not give us declaratively. */
(function () {
  "use strict";

  // A 422 from a page route carries an explanation to swap in (HX-Retarget points at the spot).
  htmx.config.responseHandling = [
    { code: "204", swap: false },
    { code: "[23]..", swap: true },
    { code: "422", swap: true, error: false },
    { code: "[45]..", swap: false, error: true },
  ];

  /** Whether an SSE event (its MessageEvent in `detail`) concerns conversation `id`. */
  window.wwAbout = function (detail, id) {
    var data;
    try {
      data = JSON.parse(detail && detail.data ? detail.data : "{}");
    } catch (e) {
      return true; // unknown shape: refreshing is always safe
    }
    var candidates = [
      data.conversation_id,
      data.conversation && data.conversation.id,
      data.message && data.message.conversation_id,
      data.data && data.data.conversation_id,
      data.payload && data.payload.conversation_id,
      data.payload && data.payload.conversation && data.payload.conversation.id,
    ];
    if (/^conversation\.|^assignee\./.test(detail && detail.type ? detail.type : "")) {
      candidates.push(data.id);
    }
    var known = candidates.filter(function (v) { return v !== undefined && v !== null; });
    if (known.length === 0) return true;
    return known.some(function (v) { return String(v) === String(id); });
  };

  function scroller() { return document.getElementById("messages-scroll"); }
  function scrollToBottom() {
    var s = scroller();
    if (s) s.scrollTop = s.scrollHeight;
  }

  var stickToBottom = true;
  document.addEventListener("htmx:beforeSwap", function (evt) {
    var target = evt.detail.target;
    if (target && target.id === "messages") {
      var s = scroller();
      stickToBottom = !s || s.scrollHeight - s.scrollTop - s.clientHeight < 120 ||
        (evt.detail.requestConfig && evt.detail.requestConfig.elt && evt.detail.requestConfig.elt.id === "composer");
    }
  });

  function markActive() {
    var open = document.getElementById("conversation");
    var id = open ? open.getAttribute("data-conversation-id") : null;
    document.body.classList.toggle("has-conversation", !!open);
    document.querySelectorAll(".conversation-item").forEach(function (item) {
      item.classList.toggle("active", item.getAttribute("data-conversation-id") === id);
    });
  }

  document.addEventListener("htmx:afterSwap", function (evt) {
    var target = evt.detail.target;
    if (!target) return;
    if (target.id === "messages" || target.classList.contains("load-older")) {
      if (target.id === "messages" && stickToBottom) scrollToBottom();
    }
    if (target.id === "conversation-pane") {
      scrollToBottom();
      setupComposer();
      var box = document.getElementById("reply-content");
      if (box && window.matchMedia("(min-width: 761px)").matches) box.focus();
    }
    markActive();
  });

  // Keep the open conversation highlighted when the list refreshes itself from the event stream.
  document.addEventListener("htmx:afterSettle", markActive);

  var liveStatus = null;
  document.addEventListener("htmx:sseError", function () {
    liveStatus = liveStatus || document.getElementById("live-status");
    if (liveStatus) { liveStatus.textContent = "Reconnecting to live updates…"; liveStatus.hidden = false; }
  });
  document.addEventListener("htmx:sseOpen", function () {
    liveStatus = liveStatus || document.getElementById("live-status");
    if (liveStatus) liveStatus.hidden = true;
    document.body.setAttribute("data-live", "on");
  });

  /** Called by the composer after a successful send: clear the text, keep reply/note mode. */
  window.wwComposerSent = function (form) {
    var box = form.querySelector("textarea");
    if (box) { box.value = ""; box.focus(); }
    var error = form.querySelector(".composer-error");
    if (error) error.textContent = "";
    closeCanned(form);
  };

  // Canned responses: "/" at the start of a word opens a menu of short codes.
  function cannedOf(form) {
    var el = form.querySelector("#canned-data");
    if (!el) return [];
    try { return JSON.parse(el.textContent || "[]"); } catch (e) { return []; }
  }
  function closeCanned(form) {
    var menu = form.querySelector(".canned-menu");
    if (menu) { menu.hidden = true; menu.innerHTML = ""; }
  }
  function slashQuery(box) {
    var before = box.value.slice(0, box.selectionStart);
    var match = /(^|\s)\/([\w-]*)$/.exec(before);
    return match ? { query: match[2].toLowerCase(), start: before.length - match[2].length - 1 } : null;
  }
  function insertCanned(box, item) {
    var q = slashQuery(box);
    if (!q) return;
    var after = box.value.slice(box.selectionStart);
    box.value = box.value.slice(0, q.start) + item.content + after;
    var caret = q.start + item.content.length;
    box.setSelectionRange(caret, caret);
    box.focus();
  }
  function renderCanned(form, box) {
    var menu = form.querySelector(".canned-menu");
    var q = slashQuery(box);
    if (!menu || !q) { closeCanned(form); return; }
    var items = cannedOf(form).filter(function (c) {
      return c.short_code.toLowerCase().indexOf(q.query) === 0 || c.content.toLowerCase().indexOf(q.query) >= 0;
    }).slice(0, 8);
    if (items.length === 0) { closeCanned(form); return; }
    menu.innerHTML = "";
    items.forEach(function (item, index) {
      var option = document.createElement("button");
      option.type = "button";
      option.className = "canned-option" + (index === 0 ? " active" : "");
      option.setAttribute("role", "option");
      var code = document.createElement("strong");
      code.textContent = "/" + item.short_code;
      var text = document.createElement("span");
      text.textContent = item.content;
      option.append(code, text);
      option.addEventListener("mousedown", function (e) {
        e.preventDefault();
        insertCanned(box, item);
        closeCanned(form);
      });
      option._item = item;
      menu.appendChild(option);
    });
    menu.hidden = false;
  }

  function setupComposer() {
    var form = document.getElementById("composer");
    if (!form || form._wwReady) return;
    form._wwReady = true;
    var box = form.querySelector("textarea");
    form.querySelectorAll("input[name=private]").forEach(function (radio) {
      radio.addEventListener("change", function () {
        form.classList.toggle("is-note", radio.value === "true" && radio.checked);
        box.placeholder = form.classList.contains("is-note")
          ? "Write a private note: only your team sees it."
          : "Write a reply, or type / for canned responses. Enter to send, Shift+Enter for a new line.";
      });
    });
    box.addEventListener("input", function () { renderCanned(form, box); });
    box.addEventListener("blur", function () { closeCanned(form); });
    box.addEventListener("keydown", function (e) {
      var menu = form.querySelector(".canned-menu");
      if (menu && !menu.hidden) {
        var options = Array.prototype.slice.call(menu.querySelectorAll(".canned-option"));
        var current = options.findIndex(function (o) { return o.classList.contains("active"); });
        if (e.key === "ArrowDown" || e.key === "ArrowUp") {
          e.preventDefault();
          var next = (current + (e.key === "ArrowDown" ? 1 : options.length - 1)) % options.length;
          options.forEach(function (o, i) { o.classList.toggle("active", i === next); });
          return;
        }
        if (e.key === "Enter" || e.key === "Tab") {
          e.preventDefault();
          if (current >= 0) insertCanned(box, options[current]._item);
          closeCanned(form);
          return;
        }
        if (e.key === "Escape") { closeCanned(form); return; }
      }
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        if (box.value.trim()) form.requestSubmit();
      }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    scrollToBottom();
    setupComposer();
    markActive();
  });
})();
