/* qwenkit web chat: conversations, streamed turns (Server-Sent Events over fetch), tool cards, plots,
   files. No framework and no build step; all text from the server goes through textContent or the
   escaping Markdown renderer. */
(function () {
  "use strict";
  var MD = window.QKMarkdown;
  var $ = function (id) { return document.getElementById(id); };
  var el = function (tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  };

  var state = {
    key: sessionStorage.getItem("qwenkit-key") || "",
    info: null,
    cid: null,
    running: false,
    lastId: 0,
    abort: null,
    view: null,
    stick: true
  };

  function newView() { return { drafts: {}, cards: {}, pending: {} }; }

  /* ------------------------------------------------------------------ HTTP */

  function askKey() {
    return new Promise(function (resolve) {
      var dialog = $("key-dialog");
      $("key-form").onsubmit = function () {
        state.key = $("key-input").value.trim();
        sessionStorage.setItem("qwenkit-key", state.key);
        resolve();
      };
      dialog.showModal();
      $("key-input").focus();
    });
  }

  function api(path, opts, retried) {
    opts = opts || {};
    var headers = Object.assign({}, opts.headers || {});
    if (state.key) headers["Authorization"] = "Bearer " + state.key;
    return fetch(path, Object.assign({}, opts, { headers: headers })).then(function (r) {
      if (r.status === 401 && !retried) return askKey().then(function () { return api(path, opts, true); });
      return r;
    });
  }

  function errorText(r) {
    return r.text().then(function (t) {
      try { return JSON.parse(t).error || t; } catch (e) { return t || ("HTTP " + r.status); }
    });
  }

  /* A URL an <img> or link can use: the plain URL when no key is needed, else a blob fetched with it. */
  function usableUrl(url) {
    if (!state.key) return Promise.resolve(url);
    return api(url).then(function (r) {
      if (!r.ok) throw new Error("HTTP " + r.status);
      return r.blob();
    }).then(function (b) { return URL.createObjectURL(b); });
  }

  /* Read a text/event-stream response; calls onEvent(type, data, id) for each event. */
  function readSSE(response, onEvent, signal) {
    var reader = response.body.getReader();
    var decoder = new TextDecoder();
    var buf = "";
    function pump() {
      return reader.read().then(function (chunk) {
        if (chunk.done) return;
        buf += decoder.decode(chunk.value, { stream: true });
        var idx;
        while ((idx = buf.indexOf("\n\n")) >= 0) {
          var block = buf.slice(0, idx);
          buf = buf.slice(idx + 2);
          var id = null, type = "message", data = [];
          block.split("\n").forEach(function (line) {
            if (line.indexOf("id: ") === 0) id = parseInt(line.slice(4), 10);
            else if (line.indexOf("event: ") === 0) type = line.slice(7);
            else if (line.indexOf("data: ") === 0) data.push(line.slice(6));
          });
          if (data.length) onEvent(type, JSON.parse(data.join("\n")), id);
        }
        if (signal && signal.aborted) { reader.cancel(); return; }
        return pump();
      });
    }
    return pump();
  }

  /* ------------------------------------------------------------------ rendering */

  var messages = $("messages");

  function nearBottom() { return messages.scrollHeight - messages.scrollTop - messages.clientHeight < 80; }
  messages.addEventListener("scroll", function () { state.stick = nearBottom(); });
  function add(node) {
    var stick = nearBottom();
    messages.appendChild(node);
    if (stick) messages.scrollTop = messages.scrollHeight;
    return node;
  }
  function note(text, cls) { return add(el("div", "msg " + (cls || "note"), text)); }

  function splitThinking(raw) {
    var open = raw.indexOf("<think>");
    var close = raw.indexOf("</think>");
    if (open < 0 && close < 0) return { reasoning: "", content: raw };
    if (close < 0) return { reasoning: raw.slice(open + 7), content: raw.slice(0, open) };
    var start = open >= 0 && open < close ? open + 7 : 0;
    return { reasoning: raw.slice(start, close), content: (open > 0 ? raw.slice(0, open) : "") + raw.slice(close + 8) };
  }

  function reasoningBlock(text) {
    var d = el("details", "reasoning");
    d.appendChild(el("summary", "", "Thinking"));
    d.appendChild(el("div", "", text.trim()));
    return d;
  }

  function draftFor(step) {
    var v = state.view;
    if (!v.drafts[step]) {
      var node = add(el("div", "msg assistant"));
      node.dataset.step = step;
      v.drafts[step] = { el: node, raw: "", queued: false, final: false };
    }
    return v.drafts[step];
  }

  function renderDraft(d) {
    d.queued = false;
    if (d.final) return;
    var parts = splitThinking(d.raw);
    var stick = nearBottom();
    d.el.textContent = "";
    if (parts.reasoning.trim()) d.el.appendChild(reasoningBlock(parts.reasoning));
    var body = el("div", "md");
    body.innerHTML = MD.render(parts.content);
    d.el.appendChild(body);
    if (stick) messages.scrollTop = messages.scrollHeight;
  }

  function toolCard(call) {
    var card = el("details", "tool-card");
    card.open = true;
    card.dataset.state = "running";
    card.dataset.callId = call.id;
    var summary = el("summary", "", "⚙ " + call.name + " — running…");
    card.appendChild(summary);
    var body = el("div", "body");
    var pre = el("pre");
    var code = el("code");
    if (call.name === "code_interpreter" && typeof call.arguments.code === "string") {
      code.innerHTML = MD.highlight(call.arguments.code, "python");
    } else {
      code.textContent = JSON.stringify(call.arguments, null, 2);
    }
    pre.appendChild(code);
    body.appendChild(pre);
    card.appendChild(body);
    return card;
  }

  function finishCard(card, result) {
    var ok = result.ok;
    card.dataset.state = ok ? "done" : "error";
    card.querySelector("summary").textContent = (ok ? "✓ " : "✗ ") + result.name + " (" +
      result.duration_s.toFixed(1) + " s)" + (ok ? "" : " — " + (result.error_type || "error"));
    var body = card.querySelector(".body");
    var text = result.content.replace(/!\[fig-\d+\]\([^)]*\)\n?/g, "").trim();
    if (text) {
      var out = el("div", "output md");
      out.innerHTML = MD.render(text);
      body.appendChild(out);
    }
    result.images.forEach(function (url, i) {
      var img = el("img");
      img.alt = "figure " + (i + 1) + " from " + result.name;
      img.className = "figure";
      img.addEventListener("load", function () { if (state.stick) messages.scrollTop = messages.scrollHeight; });
      usableUrl(url).then(function (u) { img.src = u; }, function () { img.alt += " (could not load)"; });
      body.appendChild(img);
    });
  }

  function renderTurn(ev) {
    var v = state.view;
    var d = draftFor(ev.step);
    d.final = true;
    var m = ev.message;
    d.el.textContent = "";
    if (m.reasoning && m.reasoning.trim()) d.el.appendChild(reasoningBlock(m.reasoning));
    if (m.content && m.content.trim()) {
      var body = el("div", "md");
      body.innerHTML = MD.render(m.content);
      d.el.appendChild(body);
    }
    (m.tool_calls || []).forEach(function (call) {
      var card = toolCard(call);
      v.cards[call.id] = card;
      d.el.appendChild(card);
      if (v.pending[call.id]) { finishCard(card, v.pending[call.id]); delete v.pending[call.id]; }
    });
    if (!d.el.childNodes.length) d.el.remove();
  }

  function handle(type, data, id) {
    if (id !== null && id !== undefined) {
      if (id <= state.lastId) return;  /* already shown (a re-attach may repeat) */
      state.lastId = id;
    }
    var v = state.view;
    switch (type) {
      case "turn_started":
        v.drafts = {};  /* steps count from 1 again in each turn */
        add(el("div", "msg user", data.prompt));
        setRunning(true);
        break;
      case "text_delta": {
        var d = draftFor(data.step);
        d.raw += data.text;
        if (!d.queued) { d.queued = true; requestAnimationFrame(function () { renderDraft(d); }); }
        break;
      }
      case "assistant_turn": renderTurn(data); break;
      case "tool_result": {
        var card = v.cards[data.result.call_id];
        if (card) finishCard(card, data.result); else v.pending[data.result.call_id] = data.result;
        break;
      }
      case "step_error": note(data.error_type + ": " + data.message, "error"); break;
      case "approval_requested": note("The run is waiting for approval of " + data.calls.length + " call(s)."); break;
      case "run_finished":
        if (data.result.status !== "completed") {
          note("Run ended: " + data.result.status + (data.result.error ? " — " + data.result.error : ""),
            data.result.status === "error" ? "error" : "note");
        }
        break;
      case "turn_stopped": note("Stopped."); break;
      case "turn_failed": note(data.error_type + ": " + data.message, "error"); break;
      case "kernel_restarted": note("Kernel restarted: variables and files are gone."); break;
      case "turn_ended":
        Object.keys(v.cards).forEach(function (callId) {
          var c = v.cards[callId];
          if (c.dataset.state === "running") {
            c.dataset.state = "error";
            c.querySelector("summary").textContent = "■ " + c.querySelector("summary").textContent.split(" — ")[0]
              .replace(/^⚙ /, "") + " — " + (data.status === "stopped" ? "stopped" : "no result");
          }
        });
        setRunning(false);
        refreshFiles();
        refreshList();
        break;
      default: break;
    }
  }

  function setRunning(running) {
    state.running = running;
    $("stop").disabled = !running;
    $("send").disabled = running;
    $("restart").disabled = running || !state.cid || !(state.info && state.info.code_interpreter);
    $("status").textContent = running ? "Working…" : "";
  }

  /* ------------------------------------------------------------------ conversations */

  function refreshList() {
    return api("/api/conversations").then(function (r) { return r.ok ? r.json() : { conversations: [] }; })
      .then(function (data) {
        var ul = $("conversations");
        ul.textContent = "";
        data.conversations.forEach(function (c) {
          var li = el("li", c.id === state.cid ? "current" : "");
          var open = el("button", "open", c.title || "New conversation");
          open.type = "button";
          open.title = c.title || "New conversation";
          if (c.id === state.cid) open.setAttribute("aria-current", "true");
          open.onclick = function () { openConversation(c.id); closeSidebar(); };
          var del = el("button", "del", "×");
          del.type = "button";
          del.setAttribute("aria-label", "Delete conversation " + (c.title || c.id));
          del.onclick = function () { deleteConversation(c.id); };
          li.appendChild(open);
          li.appendChild(del);
          ul.appendChild(li);
          if (c.id === state.cid) $("title").textContent = c.title || "New conversation";
        });
      });
  }

  function detach() {
    if (state.abort) { state.abort.abort(); state.abort = null; }
  }

  function resetView(cid) {
    detach();
    state.cid = cid;
    state.lastId = 0;
    state.view = newView();
    messages.textContent = "";
    $("files").textContent = "";
    $("files-panel").hidden = true;
    if (cid) history.replaceState(null, "", "#" + cid); else history.replaceState(null, "", location.pathname);
    setRunning(false);
  }

  function newConversation() {
    return api("/api/conversations", { method: "POST" }).then(function (r) {
      if (!r.ok) return errorText(r).then(function (t) { throw new Error(t); });
      return r.json();
    }).then(function (c) {
      resetView(c.id);
      $("title").textContent = "New conversation";
      return refreshList().then(function () { return c.id; });
    });
  }

  function openConversation(cid) {
    resetView(cid);
    return api("/api/conversations/" + cid).then(function (r) {
      if (r.status === 404) { resetView(null); refreshList(); return; }
      return r.json().then(function (c) {
        $("title").textContent = c.title || "New conversation";
        c.events.forEach(function (e) { handle(e.type, e, e.id); });
        setRunning(c.running);
        refreshList();
        refreshFiles();
        if (c.running) return follow(cid, null);
      });
    });
  }

  function deleteConversation(cid) {
    return api("/api/conversations/" + cid, { method: "DELETE" }).then(function () {
      if (cid === state.cid) resetView(null);
      return refreshList();
    });
  }

  /* Stream a turn's events (response given) or re-attach after the last id seen; retries while running. */
  function follow(cid, response, attempt) {
    attempt = attempt || 0;
    var controller = new AbortController();
    state.abort = controller;
    var opened = response ? Promise.resolve(response)
      : api("/api/conversations/" + cid + "/events", { headers: { "Last-Event-ID": String(state.lastId) },
          signal: controller.signal });
    return opened.then(function (r) {
      if (!r.ok) return errorText(r).then(function (t) { note(t, "error"); setRunning(false); });
      return readSSE(r, function (type, data, id) { if (state.cid === cid) handle(type, data, id); }, controller.signal);
    }).catch(function () { /* dropped: re-attach below */ }).then(function () {
      if (controller.signal.aborted || state.cid !== cid || !state.running) return;
      if (attempt >= 20) { note("Lost the connection to the server.", "error"); return; }
      return new Promise(function (ok) { setTimeout(ok, 500 * Math.min(attempt + 1, 6)); })
        .then(function () { return follow(cid, null, attempt + 1); });
    });
  }

  function send() {
    var text = $("prompt").value;
    if (!text.trim() || state.running) return;
    var ready = state.cid ? Promise.resolve(state.cid) : newConversation();
    ready.then(function (cid) {
      $("prompt").value = "";
      setRunning(true);
      return api("/api/conversations/" + cid + "/turns", {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ prompt: text })
      }).then(function (r) {
        if (!r.ok) {
          return errorText(r).then(function (t) { note(t, "error"); setRunning(r.status === 409); });
        }
        return follow(cid, r);
      });
    }).catch(function (err) { note(String(err.message || err), "error"); setRunning(false); });
  }

  function stop() {
    if (!state.cid || !state.running) return;
    $("status").textContent = "Stopping…";
    api("/api/conversations/" + state.cid + "/stop", { method: "POST" });
  }

  function restart() {
    if (!state.cid || state.running) return;
    $("status").textContent = "Restarting the kernel…";
    api("/api/conversations/" + state.cid + "/restart", { method: "POST" }).then(function (r) {
      return r.ok ? r.json().then(function (d) {
        $("status").textContent = d.restarted ? "" : "No kernel to restart yet.";
        if (d.restarted) return follow(state.cid, null);
      }) : errorText(r).then(function (t) { note(t, "error"); });
    }).then(refreshFiles);
  }

  /* ------------------------------------------------------------------ files */

  function sizeText(n) {
    return n < 1024 ? n + " B" : n < 1048576 ? (n / 1024).toFixed(1) + " KiB" : (n / 1048576).toFixed(1) + " MiB";
  }

  function refreshFiles() {
    var cid = state.cid;
    if (!cid || !state.info || !state.info.code_interpreter || state.running) return Promise.resolve();
    return api("/api/conversations/" + cid + "/files").then(function (r) { return r.ok ? r.json() : { files: [] }; })
      .then(function (data) {
        if (cid !== state.cid) return;
        var ul = $("files");
        ul.textContent = "";
        data.files.forEach(function (f) {
          var li = el("li");
          var a = el("a", "file", f.name + " (" + sizeText(f.size) + ")");
          a.href = "/api/conversations/" + cid + "/files/" + f.name.split("/").map(encodeURIComponent).join("/");
          a.setAttribute("download", f.name.split("/").pop());
          if (state.key) {
            a.onclick = function (e) {
              e.preventDefault();
              usableUrl(a.href).then(function (u) {
                var tmp = el("a"); tmp.href = u; tmp.download = a.getAttribute("download"); tmp.click();
              });
            };
          }
          li.appendChild(a);
          ul.appendChild(li);
        });
        $("files-panel").hidden = data.files.length === 0;
      });
  }

  function upload(file) {
    var ready = state.cid ? Promise.resolve(state.cid) : newConversation();
    $("status").textContent = "Uploading " + file.name + "…";
    return ready.then(function (cid) {
      return api("/api/conversations/" + cid + "/files/" + encodeURIComponent(file.name), { method: "PUT", body: file });
    }).then(function (r) {
      if (!r.ok) return errorText(r).then(function (t) { note("Upload failed: " + t, "error"); });
      return r.json().then(function (f) { note("Uploaded " + f.name + " (" + sizeText(f.size) + ")"); });
    }).catch(function (err) { note("Upload failed: " + (err.message || err), "error"); })
      .then(function () { $("status").textContent = ""; $("upload").value = ""; return refreshFiles(); });
  }

  /* ------------------------------------------------------------------ wiring */

  function closeSidebar() {
    $("sidebar").classList.remove("open");
    $("toggle-sidebar").setAttribute("aria-expanded", "false");
  }

  $("composer").addEventListener("submit", function (e) { e.preventDefault(); send(); });
  $("prompt").addEventListener("keydown", function (e) {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); send(); }
  });
  document.addEventListener("keydown", function (e) {
    if (e.key === "Escape" && $("sidebar").classList.contains("open")) { e.preventDefault(); closeSidebar(); return; }
    if (e.key === "Escape" && state.running) { e.preventDefault(); stop(); }
    if (e.altKey && (e.key === "n" || e.key === "N")) { e.preventDefault(); newConversation(); $("prompt").focus(); }
  });
  $("stop").onclick = stop;
  $("restart").onclick = restart;
  $("new-chat").onclick = function () { newConversation().then(function () { $("prompt").focus(); }); };
  $("upload").addEventListener("change", function () { if (this.files.length) upload(this.files[0]); });
  $("toggle-sidebar").onclick = function () {
    var open = $("sidebar").classList.toggle("open");
    this.setAttribute("aria-expanded", String(open));
    if (open) $("close-sidebar").focus();
  };
  $("close-sidebar").onclick = function () { closeSidebar(); $("toggle-sidebar").focus(); };

  state.view = newView();
  api("/api/info").then(function (r) { return r.json(); }).then(function (info) {
    state.info = info;
    $("model-info").textContent = "Model: " + info.model + (info.tools.length ? " · tools: " + info.tools.join(", ") : "");
    var cid = location.hash.slice(1);
    return refreshList().then(function () { return cid ? openConversation(cid) : null; });
  }).then(function () { setRunning(state.running); $("prompt").focus(); });
})();
