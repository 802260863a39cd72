// Keyboard for the labeling screen: a key clicks the button whose data-key names it (the button shows the
// key in <kbd>), so the mouse and the keyboard do the same thing. Keys do nothing while focus is in a text
// field (esc leaves it). An open panel (reason codes, alternatives, help) takes the keys until it closes. A
// key means the same whatever has the focus.
(function () {
  "use strict";

  var NAMES = { " ": "space", "Backspace": "backspace", "Enter": "enter", "Escape": "escape" };

  function typing(element) {
    return element && element.closest && element.closest("input, textarea, select, [contenteditable]");
  }

  function openPanel() {
    return document.querySelector(".panel:not([hidden])");
  }

  function buttonFor(scope, name) {
    var buttons = scope.querySelectorAll("[data-key]");
    for (var i = 0; i < buttons.length; i++) {
      var keys = buttons[i].getAttribute("data-key").split(" ");
      if (keys.indexOf(name) >= 0 && !buttons[i].disabled && !buttons[i].closest("[hidden]")) {
        return buttons[i];
      }
    }
    return null;
  }

  // A key pressed while a decision is on its way, or while the next item settles in (htmx wires its buttons
  // after the settle step, ~20 ms), is queued: once the next item is on screen the queued keys are pressed in
  // order, each on the screen the one before it left (a key that posts waits again for its reply). So a fast
  // analyst loses no key, and the queue is shown on screen ("2 keys queued") until it is worked off.
  var waiting = null;  // the request of the decision on its way
  var settling = false;
  var queue = [];
  var QUEUE_LIMIT = 20;
  var LABELS = { "space": "space", "enter": "enter", "backspace": "\u232b", "escape": "esc" };

  function inWorkspace(element) {
    return !!(element && element.closest && element.closest("#labeling"));
  }

  function known(name) {  // a key some button of the page answers to, shown or not
    var buttons = document.querySelectorAll("[data-key]");
    for (var i = 0; i < buttons.length; i++) {
      if (buttons[i].getAttribute("data-key").split(" ").indexOf(name) >= 0) return true;
    }
    return false;
  }

  function showQueue() {
    var line = document.getElementById("key-queue");
    if (!line) return;
    line.hidden = queue.length === 0;
    line.textContent = queue.length === 0 ? "" : (queue.length === 1 ? "1 key queued: " :
      queue.length + " keys queued: ") + queue.map(function (name) { return LABELS[name] || name; }).join(" ");
  }

  function press(name) {
    var button = buttonFor(openPanel() || document.body, name);
    if (button) button.click();
  }

  function busy() {
    return !!(waiting || settling);
  }

  // Press the queued keys in order until one posts (its reply brings the screen the next one is meant for).
  function drain() {
    while (queue.length && !busy()) press(queue.shift());
    showQueue();
  }

  function closePanels() {
    document.querySelectorAll(".panel").forEach(function (panel) { panel.hidden = true; });
    document.querySelectorAll("[data-role=decision]").forEach(function (input) { input.disabled = true; });
  }

  // A key means the same whatever has the focus: a handled key never reaches the focused element, and space or
  // enter without a meaning here does not click a focused button either (a link still follows enter).
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (typing(event.target)) {
      if (event.key === "Escape") event.target.blur();
      return;
    }
    var name = NAMES[event.key] || (event.key.length === 1 ? event.key.toLowerCase() : null);
    var workspace = document.getElementById("labeling");
    if (!name || !workspace) return;
    if (busy()) {
      if (!known(name)) return;
      event.preventDefault();
      if (!event.repeat && queue.length < QUEUE_LIMIT) queue.push(name);
      showQueue();
      return;
    }
    var button = buttonFor(openPanel() || document.body, name);
    if (!button) {
      var link = event.target.closest && event.target.closest("a[href]");
      if ((name === "space" || (name === "enter" && !link)) && event.target !== document.body) event.preventDefault();
      return;
    }
    event.preventDefault();
    if (event.repeat) return;
    button.click();
  });

  document.addEventListener("htmx:beforeRequest", function (event) {
    if (inWorkspace(event.detail.elt)) waiting = event.detail.xhr;
  });
  document.addEventListener("htmx:afterSwap", function (event) {
    if (event.detail.target && event.detail.target.id === "labeling") settling = true;
  });
  // (htmx tells afterRequest on the page once the form that asked is gone: known by its request, not its form)
  document.addEventListener("htmx:afterRequest", function (event) {
    if (event.detail.xhr !== waiting) return;
    waiting = null;
    if (!settling) drain();  // a reply that replaced nothing
  });
  document.addEventListener("htmx:afterSettle", function (event) {
    if (!settling || event.target.id !== "labeling") return;
    settling = false;
    drain();
  });

  // No usable reply (a server error, the network): say so on the screen; the key can be pressed again.
  function failed(event, what) {
    if (event.detail.xhr !== waiting) return;
    waiting = null;
    var dropped = queue.length;
    queue = [];  // they were meant for a next item that did not come
    showQueue();
    var work = document.querySelector("#labeling .work");
    if (!work) return;
    var line = work.querySelector("[data-role=failure]") || document.createElement("p");
    line.className = "error";
    line.setAttribute("role", "alert");
    line.setAttribute("data-role", "failure");
    var after = dropped === 1 ? " nor the key pressed after it" : " nor the " + dropped + " keys pressed after it";
    line.textContent = what + ": the last key was not recorded" + (dropped ? after : "") +
      ". Press it again, or reload the page.";
    work.insertBefore(line, work.firstChild);
  }
  document.addEventListener("htmx:responseError", function (event) {
    var xhr = event.detail.xhr;
    var plain = (xhr.getResponseHeader("Content-Type") || "").indexOf("text/plain") === 0;
    failed(event, plain && xhr.responseText.length < 300 ? xhr.responseText.replace(/\.$/, "") :
      "The server answered " + xhr.status);
  });
  document.addEventListener("htmx:sendError", function (event) {
    failed(event, "The server could not be reached");
  });

  // Buttons that open a panel instead of posting: alternatives after a reject, reason codes after the positive
  // label, help. Capture phase, so that the form is not submitted before the panel had its say.
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("button");
    if (!button) return;
    if (button.hasAttribute("data-closes")) {
      closePanels();
      return;
    }
    var opens = button.getAttribute("data-opens");
    if (opens) {
      event.preventDefault();
      var panel = document.getElementById(opens);
      var wasOpen = panel && !panel.hidden;
      closePanels();
      if (panel) panel.hidden = wasOpen;
      var field = panel && !panel.hidden && panel.querySelector("[data-autofocus]");
      if (field) field.focus();  // a panel to type in (an item id): keys do nothing while typing
      return;
    }
    if (button.closest("#reasons")) return;  // posts the decision held for its reason
    if (button.hasAttribute("data-needs-reason")) {
      var form = button.form;
      var reasons = document.getElementById("reasons");
      if (!form || !reasons) return;
      event.preventDefault();
      closePanels();
      var decision = form.querySelector("[data-role=decision]");
      decision.value = button.value;
      decision.disabled = false;
      reasons.hidden = false;
      return;
    }
    closePanels();  // any other button drops a decision that was waiting for its reason
  }, true);

  // A clicked button does not keep the focus (space or enter on it would click it again). Only once its form
  // was sent: htmx knows the button that submitted a form by its focus.
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("button");
    if (button && document.getElementById("labeling")) setTimeout(function () { button.blur(); }, 0);
  });

  // A stale form (409) or bad input (400) still carries the screen to show, with its message.
  document.addEventListener("htmx:beforeSwap", function (event) {
    var status = event.detail.xhr.status;
    if (status === 400 || status === 409) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });
})();
