/* The worker's HIT page: renders the state the server sends, and sends every action as an
 * event with a client event id.
 *
 * Actions go through one queue kept in localStorage, sent in order; a network failure or a 5xx
 * answer keeps the action at the head of the queue and retries it with exponential backoff
 * (0.5 s doubling to 10 s), so a reload or a dropped connection loses nothing and the server,
 * keyed on the client event id, stores each action once. The page never decides what comes
 * next: after the queue drains it renders the state of the last answer. Judgements are drawn
 * at once (optimistically) and corrected by that state. All text goes in via textContent.
 */
(function () {
  "use strict";

  const config = JSON.parse(document.getElementById("hit-config").textContent);
  const root = document.getElementById("hit");
  const statusBox = document.getElementById("hit-status");
  const QUEUE_KEY = "hit-queue-" + config.assignment;
  const LIKERT = {
    6: ["Strongly disagree", "Disagree", "Slightly disagree", "Slightly agree", "Agree", "Strongly agree"],
    5: ["Strongly disagree", "Disagree", "Neither", "Agree", "Strongly agree"],
  };
  let state = null;
  let queue = loadQueue();
  let sending = false;
  let backoff = 500;
  let plain = {};
  let focus = 0;
  let lastView = "";
  let submittedHere = false;
  let lastSnapshot = "";

  function newId() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    return Date.now().toString(36) + "-" + Math.random().toString(36).slice(2, 12);
  }
  function loadQueue() {
    try { return JSON.parse(localStorage.getItem(QUEUE_KEY)) || []; } catch (e) { return []; }
  }
  function saveQueue() {
    try { localStorage.setItem(QUEUE_KEY, JSON.stringify(queue)); } catch (e) { /* private mode */ }
  }
  function say(text) { statusBox.textContent = text; }
  function sleep(ms) { return new Promise(function (r) { setTimeout(r, ms); }); }

  function send(endpoint, body) {
    body.assignment = config.assignment;
    body.id = body.id || newId();
    body.time = new Date().toISOString();
    queue.push({ endpoint: endpoint, body: body });
    saveQueue();
    flush();
    return body.id;
  }

  async function flush() {
    if (sending) return;
    sending = true;
    while (queue.length) {
      const item = queue[0];
      let response = null;
      try {
        response = await fetch(config.base + "api/" + item.endpoint, {
          method: "POST",
          credentials: "same-origin",
          headers: { "Content-Type": "application/json", "X-CSRFToken": config.csrf },
          body: JSON.stringify(item.body),
        });
      } catch (err) { response = null; }
      if (response === null || response.status >= 500) {
        say("Connection problem: your work is kept and will be sent when the connection is back…");
        await sleep(backoff);
        backoff = Math.min(backoff * 2, 10000);
        continue;
      }
      backoff = 500;
      queue.shift();
      saveQueue();
      let data = null;
      try { data = await response.json(); } catch (e) { data = null; }
      // Marks still queued are drawn optimistically; a state older than them would hide them.
      if (data && data.state && queue.length === 0) state = data.state;
      if (!response.ok) {
        say((data && data.error) || "The server refused that (" + response.status + ").");
        if (!data || !data.state) await refresh(false);
      } else {
        say("");
      }
    }
    sending = false;
    render();
  }

  async function refresh(draw) {
    try {
      const response = await fetch(config.base + "api/state", { credentials: "same-origin" });
      const data = await response.json();
      if (data.state) state = data.state;
      else say(data.error || "This HIT cannot be shown.");
    } catch (e) {
      say("Connection problem: retrying…");
      await sleep(2000);
      return refresh(draw);
    }
    if (draw !== false) render();
  }

  // --- drawing helpers --------------------------------------------------------------------
  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(function ([key, value]) {
      if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else if (value !== false && value !== null && value !== undefined) node.setAttribute(key, value === true ? "" : value);
    });
    (children || []).forEach(function (child) { if (child) node.appendChild(child); });
    return node;
  }
  function imageUrl(id, task, overlay) {
    return config.base + "image/" + id + (overlay ? "?overlay=" + task : "");
  }
  function button(text, onclick, attrs) {
    return el("button", Object.assign({ type: "button", text: text, onclick: onclick }, attrs || {}));
  }
  function pageView(key, payload) {
    if (key === lastView) return;
    lastView = key;
    send("event", { type: "page_view", payload: payload });
  }

  // --- stages ---------------------------------------------------------------------------------
  // Redraw only when the state changed (or when forced by a local change such as the focus):
  // a redraw rebuilds the DOM and would drop half-filled answers and practice moves.
  function render(force) {
    if (!state) return;
    pollWhilePreparing();
    const snapshot = JSON.stringify(state);
    if (!force && snapshot === lastSnapshot) return;
    lastSnapshot = snapshot;
    root.replaceChildren();
    root.dataset.stage = state.stage;
    const task = state.task;
    const stages = {
      tutorial: renderTutorial, task_intro: renderIntro, task: renderTask,
      questionnaire: renderQuestions, final: renderQuestions, submit: renderSubmit,
      done: renderDone, closed: renderClosed,
    };
    stages[state.stage](task);
    if (state.stage !== "done" && state.stage !== "closed") {
      pageView(state.stage + ":" + (task ? task.id + ":" + task.round : ""), {
        stage: state.stage, task: task ? task.id : null,
      });
    }
  }

  function colorBar(bar) {
    // What the overlay colours mean, in the colours the overlays are drawn with.
    const strip = el("div", { class: "hit-colorbar-strip" });
    strip.style.backgroundImage = bar.gradient;
    return el("figure", { class: "hit-colorbar", id: "hit-colorbar" }, [
      el("span", { class: "hit-colorbar-end", text: "cool: mattered little" }),
      strip,
      el("span", { class: "hit-colorbar-end", text: "warm: mattered most" }),
      el("figcaption", { text: "Saliency map colours: the warmer a part of a result, the more it made the search " +
        "system match that result to your query image." }),
    ]);
  }

  function findText(target, stop) {
    return stop === "at_least" ? "find at least " + target + " images" : "find " + target + " images";
  }

  function renderTutorial() {
    const t = state.tutorial;
    const practice = { relevant: [], not_relevant: [], results: t.images.slice() };
    const board = el("div", { class: "hit-board" });
    function draw() {
      board.replaceChildren(
        column("Practice: relevant", practice.relevant, "hit-left"),
        el("div", { class: "hit-column hit-centre" }, [el("div", { class: "hit-grid" }, practice.results.map(function (id) {
          return el("figure", { class: "hit-card" }, [
            el("img", { src: imageUrl(id), alt: "practice image" }),
            el("div", { class: "hit-actions" }, [
              button("Relevant", function () { move(id, "relevant"); }),
              button("Not relevant", function () { move(id, "not_relevant"); }),
            ]),
          ]);
        }))]),
        column("Practice: not relevant", practice.not_relevant, "hit-right"));
    }
    function move(id, side) {
      practice.results = practice.results.filter(function (x) { return x !== id; });
      practice[side].push(id);
      draw();
    }
    function column(title, ids, cls) {
      return el("div", { class: "hit-column " + cls }, [el("h3", { text: title })].concat(ids.map(function (id) {
        return el("figure", { class: "hit-card hit-small" }, [el("img", { src: imageUrl(id), alt: "practice image" }),
          button("Undo", function () {
            practice.relevant = practice.relevant.filter(function (x) { return x !== id; });
            practice.not_relevant = practice.not_relevant.filter(function (x) { return x !== id; });
            practice.results.push(id); draw();
          })]);
      })));
    }
    draw();
    root.append(
      el("h1", { text: "Tutorial" }),
      el("p", { text: "In each of two tasks you get a query image and the name of an object. Mark every result " +
        "that shows the object as Relevant and the others as Not relevant; a judgement can be undone. " +
        "Refine uses your marks to find better results. " + (state.study.stop === "at_least"
          ? "Find at least " + state.study.target + " images; you may keep searching past that and finish the task " +
            "when you choose, within " + state.study.rounds + " refines."
          : "A task ends when you have found " + state.study.target + " images or used all " + state.study.rounds + " refines.") }),
      el("p", { text: "In one task each result shows a saliency map over the whole image: warm colours mark the parts " +
        "of the image the search system relied on, cool colours the parts it hardly used. You can switch any result " +
        "to the plain image." }),
      colorBar(state.study.colorbar),
      el("p", { text: "Keys: ← → choose a result, R relevant, N not relevant, U undo, S saliency map / plain image, F refine or finish." }),
      el("p", { class: "hit-note", text: "Practice with these images (nothing here counts):" }),
      board,
      button("I am ready: start the first task", function () { send("tutorial", {}); }, { class: "hit-primary", id: "hit-tutorial-done" }));
  }

  function queryHeader(task) {
    return el("header", { class: "hit-header" }, [
      el("img", { class: "hit-query", src: imageUrl(task.query), alt: "query image" }),
      el("div", {}, [
        el("h1", { text: "Task " + task.position + " of " + state.tasks + ": " + findText(task.target, task.stop) + " showing: " }, [
          el("span", { class: "hit-label", text: task.label })]),
        el("p", { text: task.xai ? "Each result shows a saliency map; press S or its button to see the plain image."
          : "Mark each result relevant or not relevant." }),
      ]),
    ]);
  }

  function renderIntro(task) {
    root.append(queryHeader(task), button("Start task " + task.position, function () {
      send("begin", { task: task.id });
    }, { class: "hit-primary", id: "hit-begin" }));
  }

  function mark(_drawn, drawnCard, side) {
    // Always the current state: a click may land on a card drawn from an older one.
    const task = state.task;
    const where = ["results", "relevant", "not_relevant"].find(function (list) {
      return task[list].some(function (c) { return c.id === drawnCard.id; });
    });
    if (!where || where === (side === "none" ? "results" : side)) return;
    const card = task[where].find(function (c) { return c.id === drawnCard.id; });
    const type = { relevant: "marked_relevant", not_relevant: "marked_not_relevant", none: "unmarked" }[side];
    ["results", "relevant", "not_relevant"].forEach(function (list) {
      task[list] = task[list].filter(function (c) { return c.id !== card.id; });
    });
    task[side === "none" ? "results" : side].push(card);
    task.found = task.relevant.length;
    const payload = { overlay_shown: task.xai && card.overlay && !plain[card.id] };
    if (task.xai && !card.overlay) payload.overlay_missing = true;
    send("event", { type: type, task: task.id, image: card.id, round: task.round, payload: payload });
    render(true);
  }

  function resultCard(task, card, index) {
    const withOverlay = task.xai && card.overlay && !plain[card.id];
    const children = [el("img", { src: imageUrl(card.id, task.id, withOverlay), alt: withOverlay ? "result with saliency map" : "result image" })];
    if (task.xai) {
      children.push(card.overlay ? button(withOverlay ? "Show plain image (S)" : "Show saliency map (S)", function () { toggle(task, card); }, { class: "hit-toggle" })
        : el("small", { text: "no saliency map for this image" }));
    }
    children.push(el("div", { class: "hit-actions" }, [
      button("Relevant (R)", function () { mark(task, card, "relevant"); }, { class: "hit-yes" }),
      button("Not relevant (N)", function () { mark(task, card, "not_relevant"); }, { class: "hit-no" }),
    ]));
    return el("figure", { class: "hit-card" + (index === focus ? " hit-focus" : ""), "data-image": card.id, tabindex: 0,
      onfocus: function () { focus = index; } }, children);
  }

  function toggle(task, card) {
    plain[card.id] = !plain[card.id];
    if (plain[card.id]) send("event", { type: "viewed_plain", task: task.id, image: card.id, round: task.round });
    render(true);
  }

  function judgedColumn(task, title, cards, cls) {
    return el("div", { class: "hit-column " + cls }, [el("h3", { text: title })].concat(cards.map(function (card) {
      return el("figure", { class: "hit-card hit-small", "data-image": card.id }, [
        el("img", { src: imageUrl(card.id), alt: "judged image" }),
        button("Undo", function () { mark(task, card, "none"); }, { class: "hit-undo" }),
      ]);
    })));
  }

  function renderTask(task) {
    focus = Math.min(focus, Math.max(task.results.length - 1, 0));
    const busy = Boolean(task.preparing) || queue.some(function (item) { return item.endpoint === "refine" || item.endpoint === "finish"; });
    const controls = el("div", { class: "hit-controls" }, [
      el("span", { class: "hit-round", text: "Round " + (task.round + 1) + " of " + (task.rounds_total + 1) + " · refines left: " + task.rounds_left }),
      task.can_refine ? button(busy ? "Refining…" : "Refine (F)", refine, { class: "hit-primary", id: "hit-refine", disabled: busy }) : null,
      task.can_finish ? button("Finish this task (F)", finish, { class: "hit-primary", id: "hit-finish", disabled: busy }) : null,
    ]);
    const found = "Found: " + task.found + " of " + (task.stop === "at_least" ? "at least " : "") + task.target;
    if (task.time_left !== null && task.time_left !== undefined) {
      controls.appendChild(el("span", { class: "hit-time", text: "minutes left: " + Math.ceil(task.time_left / 60) }));
    }
    root.append(queryHeader(task));
    if (task.colorbar) root.append(colorBar(task.colorbar));
    root.append(el("div", { class: "hit-board" }, [
      judgedColumn(task, found, task.relevant, "hit-left"),
      el("div", { class: "hit-column hit-centre" }, [
        el("h3", { text: "Results to judge" }),
        el("div", { class: "hit-grid", id: "hit-results" }, task.results.map(function (card, i) { return resultCard(task, card, i); })),
        task.preparing ? preparingNote(task) : null,
        task.results.length || task.preparing ? null : el("p", { text: task.can_refine ? "All judged: refine to see more." : "All judged." }),
        controls,
      ]),
      judgedColumn(task, "Not relevant", task.not_relevant, "hit-right"),
    ]));
  }

  // A refine round is prepared on the server (the whole archive is re-ranked and the maps of
  // the new results are computed): the page says so and asks for the state until it is ready.
  // Past the study's budget it says the round is delayed and offers a retry; the marks are kept.
  let preparingTimer = null;
  function preparingNote(task) {
    const p = task.preparing;
    const note = el("div", { class: "hit-preparing", id: "hit-preparing", role: "status" }, [
      el("p", { text: p.delayed
        ? "Round " + (p.round + 1) + " is delayed: the search server is slower than usual. Your marks are kept."
        : "Preparing round " + (p.round + 1) + ": searching the whole collection with your marks…" }),
      p.delayed ? button("Try again", function () { send("refine-retry", { task: task.id }); }, { id: "hit-retry" }) : null,
    ]);
    return note;
  }
  function pollWhilePreparing() {
    if (preparingTimer || !state || !state.task || !state.task.preparing) return;
    preparingTimer = setTimeout(function () {
      preparingTimer = null;
      if (!sending && queue.length === 0) refresh();
      else pollWhilePreparing();
    }, 1000);
  }

  function refine() { send("refine", { task: state.task.id }); render(true); }
  function finish() { send("finish", { task: state.task.id }); render(true); }

  function renderQuestions(task) {
    const final = state.stage === "final";
    const form = el("form", { id: "hit-questions", novalidate: true });
    state.questions.forEach(function (q) {
      const field = el("fieldset", { class: "hit-question" }, [el("legend", { text: q.text + (q.required ? "" : " (optional)") })]);
      if (q.scale === "text") {
        field.appendChild(el("textarea", { name: q.code, maxlength: 2000, rows: 3 }));
      } else {
        LIKERT[q.points].forEach(function (label, i) {
          field.appendChild(el("label", {}, [el("input", { type: "radio", name: q.code, value: i + 1 }), document.createTextNode(" " + label)]));
        });
      }
      form.appendChild(field);
    });
    form.appendChild(el("button", { type: "submit", class: "hit-primary", text: "Send answers" }));
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      const answers = {};
      const missing = [];
      state.questions.forEach(function (q) {
        const value = q.scale === "text" ? form.elements[q.code].value : (form.querySelector("input[name='" + q.code + "']:checked") || {}).value;
        if (value) answers[q.code] = q.scale === "text" ? value : Number(value);
        else if (q.required) missing.push(q.text);
      });
      if (missing.length) { say("Please answer: " + missing.join(" / ")); return; }
      send("answers", { task: final ? null : task.id, answers: answers });
    });
    root.append(el("h1", { text: final ? "Last questions" : "Questions about task " + task.position }), form);
  }

  function renderSubmit() {
    root.append(el("h1", { text: "Thank you!" }), el("p", { text: "Both tasks and the questions are done." }),
      button("Submit the HIT", function () { submittedHere = true; send("submit", {}); }, { class: "hit-primary", id: "hit-submit" }));
  }

  function renderDone() {
    const done = state.done;
    try { localStorage.removeItem(QUEUE_KEY); } catch (e) { /* nothing kept */ }
    if (done.submit_url) {
      // MTurk's ExternalQuestion protocol: a form POST of assignmentId to turkSubmitTo.
      const form = el("form", { method: "post", action: done.submit_url, id: "hit-mturk-form" }, [
        el("input", { type: "hidden", name: "assignmentId", value: done.assignment_id }),
        el("input", { type: "hidden", name: "completed", value: "1" }),
        el("button", { type: "submit", class: "hit-primary", text: "Send to Mechanical Turk" }),
      ]);
      root.append(el("h1", { text: "Submitted" }), el("p", { text: "Sending your HIT to Mechanical Turk…" }), form);
      if (submittedHere) { submittedHere = false; form.submit(); }
    } else {
      root.append(el("h1", { text: "Thank you, you are done" }), el("p", { text: "Your completion code:" }),
        el("p", { class: "hit-code", id: "hit-completion-code", text: done.completion_code }));
    }
  }

  function renderClosed() {
    root.append(el("h1", { text: "This HIT is closed" }), el("p", { text: "It was returned, abandoned or has ended; nothing more can be recorded." }));
  }

  document.addEventListener("keydown", function (event) {
    if (!state || state.stage !== "task" || event.target.tagName === "TEXTAREA" || event.ctrlKey || event.metaKey || event.altKey) return;
    const task = state.task;
    const card = task.results[focus];
    const key = event.key.toLowerCase();
    if (key === "arrowright") { focus = Math.min(focus + 1, task.results.length - 1); render(true); }
    else if (key === "arrowleft") { focus = Math.max(focus - 1, 0); render(true); }
    else if (key === "r" && card) mark(task, card, "relevant");
    else if (key === "n" && card) mark(task, card, "not_relevant");
    else if (key === "u" && task.relevant.concat(task.not_relevant).length) {
      const judged = task.relevant.concat(task.not_relevant);
      mark(task, judged[judged.length - 1], "none");
    }
    else if (key === "s" && card && task.xai && card.overlay) toggle(task, card);
    else if (key === "f" && task.can_refine) refine();
    else if (key === "f" && task.can_finish) finish();
    else return;
    event.preventDefault();
  });

  window.addEventListener("online", flush);
  window.hitDebug = { queue: function () { return queue.slice(); } };
  if (queue.length) flush(); else refresh();
})();
