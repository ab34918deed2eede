// Kith web interface: a small single-page app over the node's local API.
// Every value from the network (names, messages) is put in the page as
// text, never as HTML. The API token is an HttpOnly, SameSite=Strict
// cookie set by /login: this script never sees it.
"use strict";

const $main = () => document.getElementById("main");

class APIError extends Error {
  constructor(message, status, result) { super(message); this.status = status; this.result = result; }
}

async function api(method, path, body) {
  const opts = { method, credentials: "same-origin", headers: {} };
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  let r;
  try {
    r = await fetch("/api" + path, opts);
  } catch (e) {
    throw new APIError("Your Kith node does not answer. Is “kith up” still running? This page reconnects by itself when it is back.", 0);
  }
  const data = await r.json().catch(() => ({}));
  if (r.status === 401) {
    throw new APIError("This page is not logged in to your node: open the link “kith ui” prints.", 401);
  }
  if (!r.ok) throw new APIError(data.error || r.statusText, r.status, data.result);
  return data;
}

// el builds an element: el("div", {class: "x", onclick: f}, "text", child...).
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "class") e.className = v;
    else if (v === true) e.setAttribute(k, "");
    else e.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

// toast shows a short message; the same words within a few seconds (the
// page's own "now friends" and the node's event for it) show once.
const recentToasts = new Map();
function toast(text) {
  const now = Date.now();
  const key = text.toLowerCase().replace(/[.!]+$/, "");
  if (recentToasts.has(key) && now - recentToasts.get(key) < 8000) return;
  recentToasts.set(key, now);
  const t = el("div", { class: "toast" }, text);
  document.getElementById("toasts").append(t);
  setTimeout(() => t.remove(), 6000);
}

// plural: plural(1, "friend") is "1 friend", plural(3, "friend") "3 friends".
const irregular = { person: "people" };
const plural = (n, word) => `${n} ${n === 1 ? word : (irregular[word] || word + "s")}`;

function errorBox(err) {
  return el("p", { class: "error", role: "alert" }, err instanceof Error ? err.message : String(err));
}

// run performs an action, shows its failure in words, and re-renders.
async function run(button, action, after) {
  if (button) button.disabled = true;
  try {
    const res = await action();
    if (after) after(res);
    else await render();
  } catch (err) {
    const box = errorBox(err);
    (button && button.closest("section, .card, form") || $main()).prepend(box);
    setTimeout(() => box.remove(), 15000);
  } finally {
    if (button) button.disabled = false;
  }
}

const shortID = (id) => id.length > 16 ? id.slice(0, 6) + "…" + id.slice(-6) : id;

// ---- views

const views = { me, friends, groups, share, inbox, requests };

function current() {
  const v = location.hash.replace(/^#/, "");
  return views[v] ? v : "me";
}

// formState captures what the user has typed and ticked in the page's
// forms, keyed by form and field, so that a re-render (a live event)
// puts it back instead of wiping it.
function formState(root) {
  const state = [];
  root.querySelectorAll("form").forEach((f) => {
    const key = f.id || f.dataset.share || f.dataset.group || "";
    f.querySelectorAll("input, textarea, select").forEach((i) => {
      if (i.readOnly || i.type === "submit" || i.type === "button") return;
      const field = `${key}|${i.name}|${(i.type === "checkbox" || i.type === "radio") ? i.value : ""}`;
      state.push({ field, checked: i.checked, value: i.value, focused: i === document.activeElement,
        start: i.selectionStart, end: i.selectionEnd, type: i.type });
    });
  });
  return state;
}

function restoreForms(root, state) {
  const byField = new Map(state.map((s) => [s.field, s]));
  root.querySelectorAll("form").forEach((f) => {
    const key = f.id || f.dataset.share || f.dataset.group || "";
    f.querySelectorAll("input, textarea, select").forEach((i) => {
      const s = byField.get(`${key}|${i.name}|${(i.type === "checkbox" || i.type === "radio") ? i.value : ""}`);
      if (!s) return;
      if (i.type === "checkbox" || i.type === "radio") { if (!i.disabled) i.checked = s.checked; }
      else if (!i.readOnly) i.value = s.value;
      if (s.focused) {
        i.focus({ preventScroll: true });
        if (s.start !== null && typeof i.setSelectionRange === "function" && s.type !== "checkbox") {
          try { i.setSelectionRange(s.start, s.end); } catch (_) { /* not a text field */ }
        }
      }
    });
  });
}

let rendering = null;
async function render() {
  const name = current();
  for (const k of Object.keys(views)) {
    const a = document.getElementById("nav-" + k);
    if (k === name) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  const token = {};
  rendering = token;
  let content;
  try {
    content = await views[name]();
  } catch (err) {
    content = el("section", {}, el("h1", {}, "Kith"), errorBox(err));
  }
  if (rendering !== token) return; // a newer render started
  const m = $main();
  const kept = formState(m);
  const opened = [...m.querySelectorAll("details[open]")].map((d) => d.id).filter(Boolean);
  m.replaceChildren(content);
  restoreForms(m, kept);
  for (const id of opened) { const d = document.getElementById(id); if (d) d.open = true; }
  refreshBadges();
}

async function refreshBadges() {
  try {
    const [shares, reqs, cs] = await Promise.all([api("GET", "/shares"), api("GET", "/requests"), api("GET", "/consents")]);
    const newItems = shares.filter((s) => !s.withdrawn && s.items.some((i) => i.state === "new")).length;
    const pending = reqs.filter((r) => r.direction === "in" && r.state === "pending").length +
      cs.filter((c) => c.direction === "in" && c.state === "pending").length;
    setBadge("badge-inbox", newItems);
    setBadge("badge-requests", pending);
  } catch (e) { /* shown by the view */ }
}

function setBadge(id, n) {
  const b = document.getElementById(id);
  b.hidden = n === 0;
  b.textContent = String(n);
}

async function me() {
  const [id, st, set, invites] = await Promise.all([api("GET", "/id"), api("GET", "/status"), api("GET", "/settings"), api("GET", "/invites")]);
  const made = invites.filter((v) => !v.general);
  const inviteForm = el("form", { class: "card", id: "invite-form", onsubmit: (e) => {
    e.preventDefault();
    const f = e.target;
    const days = f.days.value.trim();
    run(f.querySelector("button"), () => api("POST", "/invites", { label: f.label.value.trim(), expires: days ? days + "d" : "", uses: Number(f.uses.value || 0) }),
      async (v) => { toast(`Invite ${v.label || v.token.slice(0, 8)} made.`); f.reset(); await render(); });
  } },
    el("p", { class: "muted" }, "An invite of its own for a party, a post or a few people: it ends when you say, and you can revoke it."),
    el("label", {}, "Label ", el("input", { type: "text", name: "label", maxlength: 64, placeholder: "where you give it" })),
    el("label", {}, " Days ", el("input", { type: "number", name: "days", min: 1, max: 365, placeholder: "14" })),
    el("label", {}, " People ", el("input", { type: "number", name: "uses", min: 0, max: 10000, placeholder: "any" })),
    " ", el("button", { type: "submit" }, "Make an invite"),
    made.length === 0 ? null : el("ul", { id: "invite-list" }, made.map((v) => el("li", { "data-invite": v.label || v.token },
      el("strong", {}, v.label || v.token.slice(0, 8)), " · ",
      el("span", { class: v.state === "active" ? "ok" : "muted" }, v.state), " · ",
      v.max_uses ? `${v.uses} of ${v.max_uses} used` : `${plural(v.uses, "use")}`, " · until ", new Date(v.expires_at).toLocaleDateString(), " ",
      v.state === "active" ? [
        el("button", { type: "button", onclick: () => { navigator.clipboard && navigator.clipboard.writeText(v.link); toast("Invite copied."); } }, "Copy"), " ",
        el("a", { href: `/api/invites/${v.token}/qr.png`, target: "_blank", rel: "noopener" }, "QR code"), " ",
        el("button", { type: "button", class: "danger", onclick: (e) => confirm(`Revoke the invite ${v.label || v.token.slice(0, 8)}? Requests made with it are refused from now on.`) &&
          run(e.target, () => api("POST", `/invites/${v.token}/revoke`)) }, "Revoke")] : null))));
  const settings = el("form", { class: "card", id: "settings-form", onsubmit: (e) => {
    e.preventDefault();
    const f = e.target;
    run(f.querySelector("button"), () => api("POST", "/settings", { name: f.name.value.trim(), sharing: f.sharing.value }),
      async () => { toast("Settings saved: your rendezvous node and friends get your new profile."); await render(); });
  } },
    el("label", {}, "Your name ", el("input", { type: "text", name: "name", required: true, maxlength: 64, value: set.name })),
    el("fieldset", {}, el("legend", {}, "Who may share you with others"),
      ...[["friends", "Any of my friends"], ["ask", "Ask me first: each share of me waits for my yes"], ["nobody", "Nobody: shares that name me are refused"]].map(([v, words]) =>
        el("label", { class: "choice" }, el("input", { type: "radio", name: "sharing", value: v, checked: set.sharing === v }), " ", words))),
    el("div", { class: "row" }, el("button", { type: "submit" }, "Save")));
  const invite = el("textarea", { id: "invite", rows: 4, readonly: true, "aria-label": "Your invite link" }, id.invite);
  return el("section", {},
    el("h1", {}, id.name),
    el("div", { class: "card" },
      el("p", {}, "Your id: ", el("code", { class: "id" }, id.id)),
      el("p", { class: "muted" }, `${plural(st.friends, "friend")} · ${plural(st.pending_requests, "request")} waiting · ${plural(st.shares, "share")} in your inbox`),
      el("p", {}, ...st.rendezvous.map((r) => el("span", { class: r.logged_in ? "ok" : "bad" },
        r.logged_in ? "Connected to your rendezvous node. " : `Not connected to ${shortID(r.peer)}${r.last_error ? " (" + r.last_error + ")" : ""}. `))),
      el("p", { class: "muted", id: "reachability" }, "Reachability: ", st.reachability_text)),
    el("h2", {}, "Settings"),
    settings,
    el("h2", {}, "Your invite"),
    el("div", { class: "card" },
      el("p", { class: "muted" }, "Give this to someone you know, as text or as the QR code. With it they can ask you to be friends."),
      invite,
      el("div", { class: "row" },
        el("button", { id: "copy-invite", onclick: () => { invite.select(); navigator.clipboard && navigator.clipboard.writeText(id.invite); toast("Invite copied."); } }, "Copy"),
      ),
      el("img", { class: "qr", src: "/api/invite.png", alt: "Your invite as a QR code" })),
    el("h2", {}, "More invites"),
    inviteForm,
    el("h2", {}, "Add a friend from their invite"),
    el("form", { class: "card", id: "add-form", onsubmit: (e) => {
      e.preventDefault();
      const f = e.target;
      run(f.querySelector("button"), () => api("POST", "/add", { invite: f.invite.value.trim(), message: f.message.value }),
        (v) => { toast(`Friend request sent to ${v.name}.`); f.reset(); });
    } },
      el("label", {}, "Their invite link", el("textarea", { name: "invite", rows: 3, required: true })),
      el("label", {}, "Message (optional) ", el("input", { type: "text", name: "message", maxlength: 280 })),
      el("div", { class: "row" }, el("button", { type: "submit" }, "Send friend request"))));
}

function blockedList(bs) {
  if (bs.length === 0) return [];
  return [el("h2", {}, "Blocked"),
    el("ul", { id: "blocked-list", class: "card" }, bs.map((b) => el("li", { "data-blocked": b.name || b.id },
      b.name || shortID(b.id), " ",
      el("button", { onclick: (e) => run(e.target, () => api("POST", "/unblock", { peer: b.id })) }, "Unblock"))))];
}

async function friends() {
  const [fs, bs] = await Promise.all([api("GET", "/friends"), api("GET", "/blocked")]);
  if (fs.length === 0) {
    return el("section", {}, el("h1", {}, "Friends"),
      el("p", { class: "muted" }, "No friends yet. Give someone your invite (on the Me page), or add theirs."),
      blockedList(bs));
  }
  return el("section", {}, el("h1", {}, "Friends"), friendsTable(fs), blockedList(bs));
}

function friendsTable(fs) {
  return el("table", { id: "friends-table" },
      el("thead", {}, el("tr", {}, el("th", {}, "Name"), el("th", {}, "Groups"), el("th", {}, "Online"),
        el("th", { class: "hide-narrow" }, "Introduced by"), el("th", {}, ""))),
      el("tbody", {}, fs.map((f) => el("tr", { "data-friend": f.name },
        el("td", {}, f.name, el("br"), el("code", { class: "id muted" }, shortID(f.id))),
        el("td", {}, f.groups.join(", ") || "—"),
        el("td", { class: f.online ? "ok" : "muted" }, f.online ? "online" : "offline"),
        el("td", { class: "hide-narrow" }, f.introduced_by_name || "—"),
        el("td", {}, el("div", { class: "row" },
          el("button", { class: "danger", onclick: (e) => confirm(`End your friendship with ${f.name}?`) &&
            run(e.target, () => api("POST", "/unfriend", { peer: f.id })) }, "Unfriend"),
          el("button", { class: "danger", onclick: (e) => confirm(`Block ${f.name}? This also ends your friendship, and you will no longer get anything from them.`) &&
            run(e.target, () => api("POST", "/block", { peer: f.id, unfriend: true })) }, "Block")))))));
}

async function groups() {
  const [gs, fs] = await Promise.all([api("GET", "/groups"), api("GET", "/friends")]);
  const create = el("form", { class: "card", id: "group-create", onsubmit: (e) => {
    e.preventDefault();
    run(e.target.querySelector("button"), () => api("POST", "/groups", { name: e.target.name.value.trim() }));
  } }, el("label", {}, "New group ", el("input", { type: "text", name: "name", required: true, maxlength: 64 })),
    " ", el("button", { type: "submit" }, "Create"));
  return el("section", {}, el("h1", {}, "Groups"), create,
    gs.length === 0 ? el("p", { class: "muted" }, "No groups yet.") : gs.map((g) => {
      const others = fs.filter((f) => !g.members.some((m) => m.id === f.id));
      const add = el("select", { "aria-label": `Friend to add to ${g.name}` },
        others.map((f) => el("option", { value: f.id }, f.name)));
      return el("div", { class: "card", "data-group": g.name },
        el("h2", {}, g.name, el("span", { class: "muted" }, ` · ${plural(g.members.length, "member")}`)),
        el("ul", {}, g.members.map((m) => el("li", {}, m.name, " ",
          el("button", { class: "secondary", "aria-label": `Remove ${m.name} from ${g.name}`,
            onclick: (e) => run(e.target, () => api("POST", `/groups/${encodeURIComponent(g.name)}/members/remove`, { members: [m.id] })) }, "Remove")))),
        others.length ? el("div", { class: "row" }, add,
          el("button", { onclick: (e) => run(e.target, () => api("POST", `/groups/${encodeURIComponent(g.name)}/members`, { members: [add.value] })) }, "Add")) : null,
        el("div", { class: "row" },
          el("button", { class: "secondary", onclick: (e) => {
            const name = prompt("New name for " + g.name, g.name);
            if (name && name !== g.name) run(e.target, () => api("POST", `/groups/${encodeURIComponent(g.name)}/rename`, { name }));
          } }, "Rename"),
          el("button", { class: "danger", onclick: (e) => confirm(`Delete the group ${g.name}? Its members stay your friends.`) &&
            run(e.target, () => api("DELETE", `/groups/${encodeURIComponent(g.name)}`)) }, "Delete")),
        g.members.length ? packForm(g) : null);
    }));
}

// packForm makes a welcome pack of group g: a link that befriends whoever
// redeems it and shares them the group.
function packForm(g) {
  const out = el("div", { class: "pack-out" });
  return el("form", { class: "pack", "data-pack": g.name, onsubmit: (e) => {
    e.preventDefault();
    const f = e.target;
    run(f.querySelector("button"), () => api("POST", "/invites", { pack: g.name, auto_accept: f.auto.checked, uses: Number(f.uses.value || 0), expires: "14d" }),
      (v) => out.replaceChildren(
        el("p", { class: "muted" }, `Whoever redeems it becomes your friend${v.auto_accept ? "" : " once you accept"} and gets “${g.name}” (${plural(g.members.length, "person")}).`),
        el("textarea", { class: "pack-link", rows: 3, readonly: true, "aria-label": `Welcome pack link for ${g.name}` }, v.link),
        el("img", { class: "qr", src: `/api/invites/${v.token}/qr.png`, alt: `The welcome pack for ${g.name} as a QR code` })));
  } },
    el("label", {}, "Welcome pack for ", el("input", { type: "number", name: "uses", min: 0, max: 10000, placeholder: "any", "aria-label": "How many people" }), " people "),
    el("label", { class: "check" }, el("input", { type: "checkbox", name: "auto", checked: true }), " accept them on their own"),
    " ", el("button", { type: "submit", class: "secondary" }, "Make a welcome pack"), out);
}

async function share() {
  const [fs, gs] = await Promise.all([api("GET", "/friends"), api("GET", "/groups")]);
  if (fs.length < 2) {
    return el("section", {}, el("h1", {}, "Share friends"),
      el("p", { class: "muted" }, "You need at least two friends: one to share, one to share with."));
  }
  const result = el("div", { id: "share-result", "aria-live": "polite" });
  const form = el("form", { id: "share-form", onsubmit: (e) => {
    e.preventDefault();
    const f = e.target;
    const checked = (name) => [...f.querySelectorAll(`input[name="${name}"]:checked`)].map((i) => i.value);
    const body = { to: checked("to"), friends: checked("friend"), groups: checked("group"), partial: f.partial.checked, note: f.note.value };
    if (body.to.length === 0) { result.replaceChildren(errorBox("Pick at least one friend to share with.")); return; }
    if (body.friends.length + body.groups.length === 0) { result.replaceChildren(errorBox("Pick friends or groups to share.")); return; }
    const btn = f.querySelector("button[type=submit]");
    btn.disabled = true;
    api("POST", "/share", body).then((res) => showShareResult(result, res, null))
      .catch((err) => showShareResult(result, err.result, err))
      .finally(() => { btn.disabled = false; });
  } },
    el("div", { class: "grid2" },
      el("fieldset", { class: "card" }, el("legend", {}, "Friends and groups to share"),
        gs.map((g) => el("label", { class: "check" }, el("input", { type: "checkbox", name: "group", value: g.name }),
          `Group ${g.name} (${plural(g.members.length, "member")})`)),
        fs.map((f) => el("label", { class: "check" }, el("input", { type: "checkbox", name: "friend", value: f.id }), f.name))),
      el("fieldset", { class: "card" }, el("legend", {}, "Share with"),
        fs.map((f) => el("label", { class: "check" }, el("input", { type: "checkbox", name: "to", value: f.id }), f.name)))),
    el("label", {}, "Note (optional) ", el("input", { type: "text", name: "note", maxlength: 280 })),
    el("label", { class: "check" }, el("input", { type: "checkbox", name: "partial" }),
      "Send what checks out even if some friendships cannot be proven"),
    el("div", { class: "row" }, el("button", { type: "submit", id: "share-submit" }, "Share")));
  return el("section", {}, el("h1", {}, "Share friends"),
    el("p", { class: "muted" }, "A group is shared as its members today. Your rendezvous node checks every friendship before it passes the share on."),
    form, result);
}

function showShareResult(box, res, err) {
  const parts = [];
  if (err) parts.push(errorBox(err));
  if (res && res.targets) {
    parts.push(el("ul", { id: "share-targets" }, res.targets.map((t) => el("li", { "data-target": t.name },
      `${t.name}: `, el("span", { class: t.status === "not sent" ? "bad" : "ok" }, t.status)))));
  }
  if (res && res.failed && res.failed.length) {
    parts.push(el("ul", { id: "share-failed", class: "bad" }, res.failed.map((f) => el("li", {}, f.reason))));
  }
  if (res && res.asked && res.asked.length) {
    parts.push(el("ul", { id: "share-asked", class: "muted" }, res.asked.map((a) => el("li", {},
      `${a.name} asks to be asked first: asked whether you may share them with ${a.target_name}; if they agree, they follow in a share of their own.`))));
  }
  if (!err) toast("Shared.");
  box.replaceChildren(...parts);
}

async function inbox() {
  const ss = await api("GET", "/shares");
  if (ss.length === 0) {
    return el("section", {}, el("h1", {}, "Inbox"), el("p", { class: "muted", id: "inbox-empty" }, "Nothing shared with you yet."));
  }
  // Shares with someone left to add come first, whole; the rest (every
  // friend added, asked or refused, or withdrawn) fold into the history.
  const open = ss.filter((s) => !s.withdrawn && s.items.some((i) => i.state === "new"));
  const done = ss.filter((s) => !open.includes(s));
  return el("section", {}, el("h1", {}, "Inbox"),
    open.length === 0 ? el("p", { class: "muted" }, "Nobody new to add.") : open.map(shareCard),
    done.length === 0 ? null : el("details", { id: "inbox-history" },
      el("summary", {}, `Earlier shares (${done.length})`),
      el("ul", { class: "history" }, done.map((s) => el("li", { "data-share-done": s.id },
        `${s.from_name}: `, s.items.map((i) => `${i.name} (${i.state === "friend" ? "friend" : i.state})`).join(", "),
        s.withdrawn ? el("span", { class: "bad" }, " · withdrawn") : null,
        s.note ? el("span", { class: "muted" }, ` · “${s.note}”`) : null, " ", dismissButton(s))))));
}

function shareCard(s) {
  const out = el("div", { "aria-live": "polite" });
  const pickable = s.items.filter((i) => i.state === "new");
  return el("form", { class: "card", "data-share": s.id, onsubmit: (e) => {
    e.preventDefault();
    const peers = [...e.target.querySelectorAll("input[name=item]:checked")].map((i) => i.value);
    if (peers.length === 0) { out.replaceChildren(errorBox("Tick the friends you want to add.")); return; }
    run(e.target.querySelector("button[type=submit]"), () => api("POST", `/shares/${s.id}/pick`, { peers }),
      (res) => { showPick(out, res); setTimeout(render, 1500); });
  } },
    s.pack ? el("h2", { class: "welcome" }, `${s.from_name} welcomed you with “${s.pack}” (${plural(s.items.length + (s.awaiting || 0), "person")})`)
      : el("h2", {}, `${s.from_name} shared ${plural(s.items.length, "friend")}`),
    s.note ? el("p", {}, "“", s.note, "”") : null,
    s.unopened ? el("p", { class: "muted" }, "The names in this share could not be opened: ", s.unopened) : null,
    s.awaiting ? el("p", { class: "muted awaiting" }, `${plural(s.awaiting, "more friend")} ${s.awaiting === 1 ? "asks" : "ask"} to be asked first; ${s.from_name} asked, and whoever agrees follows in a share of their own.`) : null,
    s.items.map((it) => el("label", { class: "check", "data-item": it.name },
      el("input", { type: "checkbox", name: "item", value: it.id, disabled: it.state !== "new" }),
      el("span", {}, it.name, it.group ? el("span", { class: "muted" }, ` (${s.from_name}'s group ${it.group})`) : null),
      el("span", { class: "state " + it.state }, it.state === "friend" ? "already a friend" : it.state === "former" ? "no longer a friend" : it.state),
      it.reason ? el("span", { class: "muted" }, it.reason) : null)),
    el("div", { class: "row" },
      pickable.length ? [
        el("button", { type: "button", class: "secondary", onclick: (e) => e.target.form.querySelectorAll("input[name=item]:not(:disabled)").forEach((i) => { i.checked = true; }) }, "Tick all"),
        el("button", { type: "submit" }, "Add selected"),
        s.pack ? el("button", { type: "button", class: "add-all", onclick: (e) => run(e.target, () => api("POST", `/shares/${s.id}/pick`, { all: true }),
          (res) => { showPick(out, res); setTimeout(render, 1500); }) }, "Add all") : null] : null,
      dismissButton(s)),
    out);
}

function dismissButton(s) {
  return el("button", { type: "button", class: "secondary dismiss", onclick: (e) =>
    run(e.target, () => api("POST", `/shares/${s.id}/dismiss`), () => { toast(`${s.from_name}'s share put away.`); render(); }) }, "Dismiss");
}

function showPick(box, res) {
  const words = { direct: "request sent directly", circuit: "request sent to their node, relayed by a rendezvous node", relay: "request sent through your rendezvous node", queued: "request queued", skipped: "not sent" };
  box.replaceChildren(el("ul", { class: "pick-result" }, res.map((p) => el("li", {},
    `${p.name}: ${words[p.sent] || p.sent}${p.merged ? ", with this introduction added to your pending request" : ""}${p.reason ? " (" + p.reason + ")" : ""}`))));
}

async function requests() {
  const [rs, cs] = await Promise.all([api("GET", "/requests"), api("GET", "/consents")]);
  const asking = cs.filter((c) => c.direction === "in" && c.state === "pending");
  const waiting = rs.filter((r) => r.direction === "in" && r.state === "pending");
  const answered = rs.filter((r) => r.direction === "in" && r.state !== "pending");
  const outgoing = rs.filter((r) => r.direction === "out");
  return el("section", {}, el("h1", {}, "Friend requests"),
    asking.length === 0 ? null : [el("h2", {}, "Asking to share you"),
      el("div", { id: "consents" }, asking.map((c) => el("div", { class: "card", "data-ask": c.name },
        el("p", {}, el("strong", {}, c.text), "."),
        c.note ? el("p", {}, "“", c.note, "”") : null,
        el("div", { class: "row" },
          el("button", { onclick: (e) => run(e.target, () => api("POST", `/consents/${c.id}/approve`), () => { toast(`${c.name} may share you with ${c.target_name}.`); render(); }) }, "Yes, share me"),
          el("button", { class: "secondary", onclick: (e) => run(e.target, () => api("POST", `/consents/${c.id}/refuse`)) }, "No"),
          el("span", { class: "muted" }, `Only ${c.target_name}, and only from ${c.name}.`)))))],
    el("h2", {}, "To you"),
    waiting.length === 0 ? el("p", { class: "muted" }, "None waiting.") : waiting.map((r) => el("div", { class: "card", "data-request": r.name },
      el("p", {}, el("strong", {}, r.name), " ", el("span", { class: "state " + r.state }, r.state)),
      r.provenance ? el("p", { class: r.introducer_verified ? "verified" : "" },
        r.introducer_verified ? "✓ " : "", r.provenance) : null,
      r.message ? el("p", {}, "“", r.message, "”") : null,
      r.unopened ? el("p", { class: "muted" }, "Their words could not be opened: ", r.unopened) : null,
      el("div", { class: "row" },
        el("button", { onclick: (e) => run(e.target, () => api("POST", `/requests/${r.id}/accept`), () => { toast(`You and ${r.name} are now friends.`); render(); }) }, "Accept"),
        el("button", { class: "secondary", onclick: (e) => run(e.target, () => api("POST", `/requests/${r.id}/decline`)) }, "Decline"),
        el("span", { class: "muted" }, "A decline is never revealed.")))),
    answered.length === 0 ? null : el("details", { id: "requests-history" },
      el("summary", {}, `Answered (${answered.length})`),
      el("ul", { class: "history" }, answered.map((r) => el("li", { "data-request": r.name },
        r.name, " ", el("span", { class: "state " + r.state }, r.state),
        r.provenance ? el("span", { class: "muted" }, " · " + r.provenance) : null,
        r.state === "declined" ? [" ", el("button", { class: "secondary", onclick: (e) => run(e.target, () => api("POST", `/requests/${r.id}/accept`),
          () => { toast(`You and ${r.name} are now friends.`); render(); }) }, "Accept after all")] : null)))),
    el("h2", {}, "From you"),
    outgoing.length === 0 ? el("p", { class: "muted" }, "None.") : el("details", { id: "requests-out", open: outgoing.some((r) => r.state === "pending") },
      el("summary", {}, `${plural(outgoing.length, "request")} (${outgoing.filter((r) => r.state === "pending").length} pending)`),
      el("table", {},
        el("thead", {}, el("tr", {}, el("th", {}, "To"), el("th", {}, "State"), el("th", { class: "hide-narrow" }, "How"), el("th", {}, ""))),
        el("tbody", {}, outgoing.map((r) => el("tr", { "data-request-out": r.name }, el("td", {}, r.name), el("td", { class: "state " + r.state }, r.state),
          el("td", { class: "hide-narrow" }, r.provenance || "—"),
          el("td", {}, r.state === "pending" ? el("button", { class: "secondary", onclick: (e) => confirm(`Take back your request to ${r.name}?`) &&
            run(e.target, () => api("POST", `/requests/${r.id}/cancel`)) }, "Cancel") : null)))))));
}

// ---- live updates

let source = null;
let pending = null;
function connect() {
  const conn = document.getElementById("conn");
  source = new EventSource("/api/events");
  let lost = false;
  source.onopen = () => {
    conn.textContent = "live"; conn.classList.remove("off");
    if (lost) { lost = false; render(); } // back after a restart: what changed meanwhile
  };
  source.onerror = () => { lost = true; conn.textContent = "reconnecting…"; conn.classList.add("off"); };
  const onEvent = (e) => {
    let ev = {};
    try { ev = JSON.parse(e.data); } catch (_) { /* ignore */ }
    if (ev.text && ["share", "request", "answer", "friend", "withdrawal", "consent"].includes(ev.type)) toast(ev.text);
    clearTimeout(pending);
    pending = setTimeout(render, 150);
  };
  for (const t of ["share", "request", "answer", "friend", "withdrawal", "relay", "consent", "settings"]) source.addEventListener(t, onEvent);
}

window.addEventListener("hashchange", () => {
  render();
  $main().focus({ preventScroll: true });
  window.scrollTo(0, 0); // the page's heading, not under the sticky header
});
document.addEventListener("DOMContentLoaded", () => { render(); connect(); });
