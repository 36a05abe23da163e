// Messenger sandbox for the Qwen3-VL Cookbook (05_gui_agent). Plain JS, no network.
// Everything the app knows is in window.appState, so a task's success is read from state, never
// guessed from pixels. Interactive elements carry data-name (the grounding targets).
"use strict";

const COLORS = ["#e4572e", "#2a9d8f", "#8e5bd6", "#e9a03b", "#3a86ff", "#d6336c", "#2b9348", "#6c757d"];

function chat(id, name, opts, messages) {
  return Object.assign({ id, name, group: false, pinned: false, muted: false, deleted: false,
                         draft: "", messages: messages.map(([from, text]) => ({ from, text })) }, opts);
}

// Pinned chats first, then the others in this order. Look-alike names are distractors.
const INITIAL = [
  chat("tech", "Tech Exchange Group", { group: true, pinned: true }, [["Ana", "Slides for Friday are up"], ["me", "Thanks!"]]),
  chat("alice", "Alice Chen", { pinned: true }, [["Alice Chen", "Lunch tomorrow?"]]),
  chat("bob", "Bob Li", {}, [["Bob Li", "Are we still on for tonight?"]]),
  chat("carol", "Carol Wu", { draft: "Running late, start without me" }, [["Carol Wu", "Meeting moved to 3 pm"]]),
  chat("family", "Family Group", { group: true }, [["Dad", "Photos from the weekend"]]),
  chat("alice2", "Alice Cheng", {}, [["Alice Cheng", "Thanks for the book!"]]),
  chat("dentist", "Dentist Office", {}, [["Dentist Office", "Reminder: check-up on Friday"]]),
  chat("books", "Book Club", { group: true }, [["Mei", "Next read: Dune"]]),
  chat("landlord", "Landlord", {}, [["Landlord", "Plumber comes Monday"]]),
  chat("gym", "Gym Buddies", { group: true, muted: true }, [["Sam", "Leg day!"]]),
  chat("bob2", "Bob Lin", {}, [["Bob Lin", "Sent you the invoice"]]),
  chat("spam", "Spam Offers", {}, [["Spam Offers", "You won a prize!!!"]]),
  chat("hiking", "Hiking Club", { group: true }, [["Lee", "Trail map attached"]]),
  chat("zhang", "Zhang Wei", {}, [["Zhang Wei", "See you in Shanghai"]]),
  chat("roommates", "Old Roommates", { group: true }, [["Jo", "Reunion in May?"]]),
  chat("mom", "Mom", {}, [["Mom", "Call me when you can"]]),
];

const appState = {
  chats: JSON.parse(JSON.stringify(INITIAL)),
  open: null,        // id of the open chat
  search: "",        // text in the search box
  menu: null,        // id of the chat whose long-press menu is open
  events: [],        // what the user did, in order (pin, unpin, mute, send, delete, ...)
};
window.appState = appState;
window.appSnapshot = () => JSON.parse(JSON.stringify(appState));

const $ = (sel) => document.querySelector(sel);
const byId = (id) => appState.chats.find((c) => c.id === id);
const log = (kind, id, extra) => appState.events.push(Object.assign({ kind, chat: id }, extra || {}));

function ordered() {
  const q = appState.search.trim().toLowerCase();
  const live = appState.chats.filter((c) => !c.deleted && (!q || c.name.toLowerCase().includes(q)));
  return live.filter((c) => c.pinned).concat(live.filter((c) => !c.pinned));
}

function initials(name) { return name.split(/\s+/).map((w) => w[0]).join("").slice(0, 2).toUpperCase(); }

function renderList() {
  const list = $("#chat-list");
  list.textContent = "";
  for (const c of ordered()) {
    const li = document.createElement("li");
    li.className = "chat" + (c.pinned ? " pinned" : "") + (c.id === appState.open ? " active" : "");
    li.dataset.chat = c.id;
    li.dataset.name = "chat " + c.name;
    const color = COLORS[INITIAL.findIndex((x) => x.id === c.id) % COLORS.length];
    const last = c.messages[c.messages.length - 1];
    const flags = [c.pinned ? "pinned" : "", c.muted ? "muted" : ""].filter(Boolean);
    li.innerHTML = `<div class="avatar" style="background:${color}"></div>
      <div class="meta"><div class="name"><span></span><span class="flags"></span></div>
      <div class="preview"></div></div>`;
    li.querySelector(".avatar").textContent = initials(c.name);
    li.querySelector(".name span").textContent = c.name;
    for (const f of flags) {
      const b = document.createElement("span");
      b.className = "badge " + f;
      b.textContent = f;
      li.querySelector(".flags").append(b);
    }
    const preview = li.querySelector(".preview");
    if (c.draft) {
      preview.innerHTML = '<span class="draft">Draft:</span> ';
      preview.append(c.draft);
    } else if (last) {
      preview.textContent = (last.from === "me" ? "You: " : (c.group ? last.from + ": " : "")) + last.text;
    }
    attachPress(li, c.id);
    list.append(li);
  }
}

function renderChat() {
  const pane = $("#chat-pane");
  const c = appState.open && byId(appState.open);
  pane.classList.toggle("open", !!c);
  document.body.classList.toggle("in-chat", !!c);
  if (!c) return;
  $("#chat-title").textContent = c.name;
  const ol = $("#messages");
  ol.textContent = "";
  for (const m of c.messages) {
    const li = document.createElement("li");
    li.className = "msg" + (m.from === "me" ? " me" : "");
    li.textContent = (c.group && m.from !== "me" ? m.from + ": " : "") + m.text;
    ol.append(li);
  }
  ol.scrollTop = ol.scrollHeight;
  const compose = $("#compose");
  if (compose.value !== c.draft) compose.value = c.draft;
  $("#discard").hidden = !c.draft;
}

function renderMenu() {
  const c = appState.menu && byId(appState.menu);
  $("#menu-backdrop").hidden = !c;
  if (!c) return;
  $("#menu-title").textContent = c.name;
  const pin = $("#menu-pin"), mute = $("#menu-mute");
  pin.textContent = c.pinned ? "Unpin" : "Pin";
  pin.dataset.name = "menu " + pin.textContent;
  mute.textContent = c.muted ? "Unmute" : "Mute";
  mute.dataset.name = "menu " + mute.textContent;
}

function render() { renderList(); renderChat(); renderMenu(); }

function openChat(id) {
  if (appState.open === id) return;
  const wasOpen = appState.open !== null;
  appState.open = id;
  log("open", id);
  // the phone's Back (system button or the header's ‹) returns to the list through history
  if (wasOpen) history.replaceState({ chat: id }, ""); else history.pushState({ chat: id }, "");
  render();
}

function closeChat() { appState.open = null; render(); }

// Long press (500 ms without moving) or right click opens the chat's menu; a short press opens it.
const LONG_PRESS_MS = 500;
function attachPress(el, id) {
  let timer = null, start = null, fired = false;
  el.addEventListener("pointerdown", (e) => {
    if (e.button !== 0) return;
    fired = false;
    start = [e.clientX, e.clientY];
    timer = setTimeout(() => { fired = true; timer = null; openMenu(id); }, LONG_PRESS_MS);
  });
  el.addEventListener("pointermove", (e) => {
    if (timer && start && Math.hypot(e.clientX - start[0], e.clientY - start[1]) > 10) { clearTimeout(timer); timer = null; }
  });
  const cancel = () => { if (timer) { clearTimeout(timer); timer = null; } };
  el.addEventListener("pointerup", cancel);
  el.addEventListener("pointercancel", cancel);
  el.addEventListener("click", (e) => {
    if (fired) { fired = false; e.preventDefault(); return; }
    openChat(id);
  });
  el.addEventListener("contextmenu", (e) => { e.preventDefault(); cancel(); fired = false; openMenu(id); });
}

function openMenu(id) { appState.menu = id; renderMenu(); }
function closeMenu() { appState.menu = null; renderMenu(); }

$("#menu-backdrop").addEventListener("click", (e) => { if (e.target.id === "menu-backdrop") closeMenu(); });
$("#menu-pin").addEventListener("click", () => {
  const c = byId(appState.menu);
  c.pinned = !c.pinned;
  log(c.pinned ? "pin" : "unpin", c.id);
  closeMenu(); render();
});
$("#menu-mute").addEventListener("click", () => {
  const c = byId(appState.menu);
  c.muted = !c.muted;
  log(c.muted ? "mute" : "unmute", c.id);
  closeMenu(); render();
});
$("#menu-delete").addEventListener("click", () => {
  const c = byId(appState.menu);
  c.deleted = true;
  log("delete", c.id);
  if (appState.open === c.id) appState.open = null;
  closeMenu(); render();
});

$("#search").addEventListener("input", (e) => { appState.search = e.target.value; renderList(); });
$("#compose").addEventListener("input", (e) => {
  const c = byId(appState.open);
  if (c) { c.draft = e.target.value; $("#discard").hidden = !c.draft; }
});
function send() {
  const c = byId(appState.open);
  const text = $("#compose").value.trim();
  if (!c || !text) return;
  c.messages.push({ from: "me", text });
  c.draft = "";
  log("send", c.id, { text });
  render();
}
$("#send").addEventListener("click", send);
$("#compose").addEventListener("keydown", (e) => { if (e.key === "Enter") { e.preventDefault(); send(); } });
$("#discard").addEventListener("click", () => {
  const c = byId(appState.open);
  if (!c) return;
  c.draft = "";
  log("discard_draft", c.id);
  render();
});
$("#back").addEventListener("click", () => history.back());
window.addEventListener("popstate", () => { closeMenu(); closeChat(); });
document.addEventListener("keydown", (e) => { if (e.key === "Escape" && appState.menu) closeMenu(); });

render();
