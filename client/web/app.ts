/// <reference lib="dom" />
/**
 * The browser page: renders a {@linkcode WebState} into index.html's elements and turns
 * clicks, key presses and form submissions into {@linkcode WebClient} calls. UI only: what the
 * frames mean is client/ and shared/ code (through web_client.ts), and what the page shows is
 * decided by state.ts. Text from the network is only ever set with `textContent`.
 *
 * Bundled into app.bundle.js by `deno task web` (see build.ts).
 *
 * @module
 */

import { BrowserTrustStore } from "./browser_trust_store.ts";
import {
  type Alarm,
  type ChatMessage,
  conversationList,
  groupIdOf,
  initialState,
  isBlocked,
  isOnline,
  nameOf,
  type Notice,
  PUBLIC,
  Store,
  type WebState,
} from "./state.ts";
import { serverUrlOf, WebClient } from "./web_client.ts";

function $<T extends HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`The page has no element #${id}`);
  return el as T;
}

/** Creates an element with classes, attributes and text. */
function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: { class?: string; text?: string; attrs?: Record<string, string> } = {},
  ...children: (Node | undefined)[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  if (props.class) el.className = props.class;
  if (props.text !== undefined) el.textContent = props.text;
  for (const [k, v] of Object.entries(props.attrs ?? {})) el.setAttribute(k, v);
  for (const child of children) if (child) el.append(child);
  return el;
}

function timeText(at: number): string {
  return new Date(at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function sizeText(bytes: number): string {
  if (bytes < 1024) return `${bytes} bytes`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;
}

const serverUrl = serverUrlOf(location);
const trust = new BrowserTrustStore(globalThis.localStorage);
const store = new Store(initialState(serverUrl));
const client = new WebClient({
  serverUrl,
  trust,
  store,
  keepFile: (_name, data) =>
    Promise.resolve(
      URL.createObjectURL(new Blob([new Uint8Array(data)], { type: "application/octet-stream" })),
    ),
});

// For the browser tests and the curious: the state, read-only.
Object.defineProperty(globalThis, "socpState", { get: () => store.state });

const el = {
  status: $("status"),
  me: $("me"),
  meName: $("me-name"),
  logout: $<HTMLButtonElement>("logout"),
  alarms: $("alarms"),
  notices: $("notices"),
  loginView: $("login-view"),
  loginForm: $<HTMLFormElement>("login-form"),
  createForm: $<HTMLFormElement>("create-form"),
  busy: $("busy"),
  loginError: $("login-error"),
  chatView: $("chat-view"),
  conversations: $("conversations"),
  findForm: $<HTMLFormElement>("find-form"),
  findUser: $<HTMLInputElement>("find-user"),
  title: $("conversation-title"),
  info: $("conversation-info"),
  action: $<HTMLButtonElement>("conversation-action"),
  groupForm: $<HTMLFormElement>("group-form"),
  whoelse: $<HTMLButtonElement>("whoelse"),
  messages: $("messages"),
  transfers: $("transfers"),
  composer: $<HTMLFormElement>("composer"),
  text: $<HTMLTextAreaElement>("composer-text"),
  attach: $<HTMLButtonElement>("attach"),
  file: $<HTMLInputElement>("file-input"),
};

// ---------------------------------------------------------------------------------------------
// Rendering

function statusText(s: WebState): string {
  switch (s.phase) {
    case "login":
      return "Not logged in";
    case "connecting":
      return s.busy ?? "Connecting…";
    case "ready":
      if (s.busy !== undefined) return s.busy;
      return `Connected to ${s.server}${s.me?.pinned ? " (server key pinned)" : ""}`;
    case "reconnecting":
      return "Connection lost; reconnecting…";
    case "closed":
      return "Disconnected";
  }
}

function renderAlarm(alarm: Alarm): HTMLElement {
  const actions = h("div", { class: "alarm-actions" });
  if (alarm.subject !== undefined) {
    const forget = h("button", {
      text: alarm.kind === "server" ? "Forget the pinned server key…" : "Trust the new key…",
      attrs: { type: "button" },
    });
    forget.addEventListener("click", () => forgetPin(alarm));
    actions.append(forget);
  }
  const dismiss = h("button", { text: "Dismiss", attrs: { type: "button" } });
  dismiss.addEventListener("click", () => store.dispatch({ type: "dismiss", id: alarm.id }));
  actions.append(dismiss);
  return h(
    "div",
    { class: "alarm", attrs: { role: "alert" } },
    h("strong", {
      class: "alarm-title",
      text: alarm.kind === "server" ? "⚠ Server key changed" : "⚠ A user's key changed",
    }),
    h("p", { text: alarm.text }),
    actions,
  );
}

function forgetPin(alarm: Alarm): void {
  const subject = alarm.subject;
  if (subject === undefined) return;
  const what = alarm.kind === "server"
    ? `Forget the key pinned for ${subject}? The next login trusts whatever key the server presents.`
    : `Forget the key pinned for ${nameOf(store.state, subject)}? The next key seen is trusted.`;
  if (!globalThis.confirm(what)) return;
  if (alarm.kind === "server") trust.forgetServer(subject);
  else trust.forgetUser(subject);
  store.dispatch({ type: "dismiss", id: alarm.id });
  store.dispatch({ type: "notice", level: "info", text: "The pin was forgotten" });
}

function renderNotice(notice: Notice): HTMLElement {
  const dismiss = h("button", {
    class: "button-quiet",
    text: "Dismiss",
    attrs: { type: "button", "aria-label": "Dismiss this notice" },
  });
  dismiss.addEventListener("click", () => store.dispatch({ type: "dismiss", id: notice.id }));
  return h(
    "div",
    { class: `notice notice-${notice.level}` },
    h("p", { text: notice.text }),
    dismiss,
  );
}

function badge(text: string, kind: "ok" | "warn" | "bad"): HTMLElement {
  return h("span", { class: `badge badge-${kind}`, text });
}

function marks(m: ChatMessage): HTMLElement[] {
  if (m.direction !== "in") return [];
  // Files carry no content signature in SOCP: what the page checked is the manifest's hash.
  if (m.file) return m.file.ok ? [badge("✓ SHA-256 matches", "ok")] : [badge("refused", "bad")];
  const out: HTMLElement[] = [];
  if (m.encrypted === false) out.push(badge("unencrypted", "warn"));
  if (!m.verified) out.push(badge("⚠ unverified signature", "bad"));
  else if (!m.trusted) out.push(badge("⚠ signed by an untrusted key", "bad"));
  else out.push(badge("✓ verified", "ok"));
  return out;
}

function statusBadge(m: ChatMessage): HTMLElement | undefined {
  switch (m.status) {
    case "sending":
      return badge("sending…", "warn");
    case "sent":
      return badge("✓ sent", "ok");
    case "pending":
      return badge("waiting for the connection", "warn");
    case "queued":
      return badge("queued: recipient offline", "warn");
    case "failed":
      return badge(`not sent: ${m.error ?? "error"}`, "bad");
    default:
      return undefined;
  }
}

function renderMessage(m: ChatMessage): HTMLElement {
  if (m.direction === "system") {
    return h("li", { class: "msg msg-system" }, h("p", { text: m.text }));
  }
  const who = m.direction === "out" ? "You" : m.fromName;
  const meta = h(
    "p",
    { class: "msg-meta" },
    h("span", { class: "msg-from", text: who }),
    h("time", { text: timeText(m.at), attrs: { datetime: new Date(m.at).toISOString() } }),
    ...marks(m),
    statusBadge(m),
  );
  const body = h("p", { class: "msg-text", text: m.text });
  const li = h("li", { class: `msg msg-${m.direction}`, attrs: { "data-id": String(m.id) } });
  li.append(meta, body);
  if (m.file?.ok && m.file.url) {
    li.append(
      h(
        "p",
        { class: "msg-file" },
        h("a", {
          text: `Download ${m.file.name}`,
          attrs: { href: m.file.url, download: m.file.name },
        }),
        h("span", { class: "file-size", text: ` ${sizeText(m.file.size)}` }),
      ),
    );
  }
  return li;
}

function renderConversations(s: WebState): void {
  const focused = document.activeElement?.closest<HTMLElement>("[data-conversation]")
    ?.dataset["conversation"];
  const items = conversationList(s).map((id) => {
    const conversation = s.conversations[id];
    const person = id !== PUBLIC && groupIdOf(id) === undefined;
    const online = person && isOnline(s, id);
    const unread = conversation?.unread ?? 0;
    const button = h(
      "button",
      {
        class: "conversation-button",
        attrs: { type: "button", "data-conversation": id },
      },
      h("span", {
        class: `presence ${!person ? "presence-none" : online ? "presence-on" : "presence-off"}`,
        attrs: { "aria-hidden": "true" },
      }),
      h("span", { class: "conversation-name", text: id === PUBLIC ? "# public" : nameOf(s, id) }),
      person
        ? h("span", { class: "visually-hidden", text: online ? ", online" : ", offline" })
        : undefined,
      unread > 0
        ? h("span", {
          class: "unread",
          text: String(unread),
          attrs: { "aria-label": `${unread} unread` },
        })
        : undefined,
    );
    if (id === s.active) button.setAttribute("aria-current", "true");
    button.addEventListener("click", () => {
      store.dispatch({ type: "select", conversation: id });
      el.text.focus();
    });
    return h("li", {}, button);
  });
  el.conversations.replaceChildren(...items);
  if (focused !== undefined) {
    el.conversations.querySelector<HTMLElement>(`[data-conversation="${CSS.escape(focused)}"]`)
      ?.focus();
  }
}

/** How long an info notice stays (warnings and errors stay until dismissed). */
const INFO_NOTICE_MS = 8000;
const fading = new Set<number>();

let shownConversation = "";
let shownCount = 0;

function renderMessages(s: WebState): void {
  const conversation = s.conversations[s.active];
  const messages = conversation?.messages ?? [];
  const list = el.messages;
  const nearBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 80;
  list.replaceChildren(...messages.map(renderMessage));
  if (messages.length === 0) {
    list.append(h("li", {
      class: "msg msg-system",
      text: s.active === PUBLIC
        ? "No public messages yet. What you write here is encrypted for each online user."
        : `No messages with ${nameOf(s, s.active)} yet.`,
    }));
  }
  const switched = shownConversation !== s.active;
  if (switched || nearBottom || messages.length > shownCount) {
    list.scrollTop = list.scrollHeight;
  }
  shownConversation = s.active;
  shownCount = messages.length;
}

function render(s: WebState): void {
  const loggedIn = s.me !== undefined && s.busy === undefined &&
    (s.phase === "ready" || s.phase === "reconnecting");
  document.body.dataset["phase"] = s.phase;
  el.status.textContent = statusText(s);
  el.me.hidden = !loggedIn;
  if (s.me) {
    el.meName.textContent = `${s.me.displayName}${
      s.me.account && s.me.account !== s.me.displayName ? ` (${s.me.account})` : ""
    }`;
  }

  el.alarms.hidden = s.alarms.length === 0;
  el.alarms.replaceChildren(...s.alarms.map(renderAlarm));
  el.notices.replaceChildren(...s.notices.map(renderNotice));
  for (const notice of s.notices) {
    if (notice.level !== "info" || fading.has(notice.id)) continue;
    fading.add(notice.id);
    setTimeout(() => store.dispatch({ type: "dismiss", id: notice.id }), INFO_NOTICE_MS);
  }

  el.loginView.hidden = loggedIn;
  el.chatView.hidden = !loggedIn;
  el.busy.hidden = s.busy === undefined;
  el.busy.textContent = s.busy ?? "";
  el.loginError.hidden = s.loginError === undefined;
  el.loginError.textContent = s.loginError ?? "";
  for (const form of [el.loginForm, el.createForm]) {
    for (const control of form.querySelectorAll<HTMLButtonElement>("button")) {
      control.disabled = s.busy !== undefined;
    }
  }
  if (!loggedIn) return;

  renderConversations(s);
  el.title.textContent = s.active === PUBLIC ? "Public channel" : nameOf(s, s.active);
  const group = groupIdOf(s.active);
  const members = group === undefined ? [] : s.groups[group]?.members ?? [];
  el.info.textContent = s.active === PUBLIC
    ? `${Math.max(0, s.online.length - 1)} others online · encrypted for each recipient`
    : group !== undefined
    ? `${members.map((id) => nameOf(s, id)).join(", ")} · encrypted for each member`
    : `${isBlocked(s, s.active) ? "blocked · " : ""}${
      isOnline(s, s.active) ? "online" : "offline: messages are queued"
    } · end-to-end encrypted`;
  el.action.hidden = s.active === PUBLIC || (group !== undefined && !s.groups[group]);
  el.action.textContent = group !== undefined
    ? "Leave group"
    : isBlocked(s, s.active)
    ? "Unblock"
    : "Block";
  renderMessages(s);
  el.transfers.replaceChildren(
    ...Object.values(s.transfers).map((t) =>
      h(
        "li",
        {},
        h("label", {
          text: `${t.direction === "send" ? "Sending" : "Receiving"} ${t.name} `,
        }, h("progress", { attrs: { max: "100", value: String(t.percent) } })),
      )
    ),
  );
}

// ---------------------------------------------------------------------------------------------
// Input

function field(form: HTMLFormElement, name: string): string {
  const control = form.elements.namedItem(name);
  return control instanceof HTMLInputElement ? control.value : "";
}

el.loginForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const password = el.loginForm.elements.namedItem("password") as HTMLInputElement;
  const ok = await client.login(field(el.loginForm, "username").trim(), password.value);
  password.value = "";
  if (ok) el.text.focus();
  else password.focus();
});

el.createForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = el.createForm;
  const password = field(form, "password");
  if (password !== field(form, "password2")) {
    store.dispatch({
      type: "login_failed",
      code: "BAD_REQUEST",
      text: "The two passwords differ",
    });
    return;
  }
  const ok = await client.create(
    field(form, "username").trim(),
    password,
    field(form, "display"),
  );
  if (ok) {
    form.reset();
    el.text.focus();
  }
});

el.logout.addEventListener("click", async () => {
  await client.logout();
  $<HTMLInputElement>("login-username").focus();
});

el.composer.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = el.text.value;
  if (text.trim().length === 0) return;
  el.text.value = "";
  void client.sendText(store.state.active, text);
});

el.text.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    el.composer.requestSubmit();
  }
});

el.attach.addEventListener("click", () => el.file.click());

el.file.addEventListener("change", async () => {
  const file = el.file.files?.[0];
  el.file.value = "";
  if (!file) return;
  const data = new Uint8Array(await file.arrayBuffer());
  await client.sendFile(store.state.active, file.name, data);
});

el.action.addEventListener("click", async () => {
  const s = store.state;
  const group = groupIdOf(s.active);
  if (group !== undefined) {
    const name = s.groups[group]?.name;
    if (name !== undefined && globalThis.confirm(`Leave the group ${name}?`)) {
      await client.leaveGroup(name);
    }
  } else if (isBlocked(s, s.active)) await client.unblock(s.active);
  else if (globalThis.confirm(`Block ${nameOf(s, s.active)}? They can no longer message you.`)) {
    await client.block(s.active);
  }
});

el.groupForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const name = field(el.groupForm, "name").trim();
  const members = field(el.groupForm, "members").split(",").map((m) => m.trim()).filter((m) =>
    m.length > 0
  );
  if (!name || members.length === 0) return;
  await client.createGroup(name, members);
  const created = Object.entries(store.state.groups).find(([, g]) => g.name === name);
  if (created) {
    el.groupForm.reset();
    store.dispatch({ type: "select", conversation: `group:${created[0]}` });
    el.text.focus();
  }
});

el.whoelse.addEventListener("click", () => void client.whoElseSince(3600));

el.findForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const text = el.findUser.value.trim();
  if (!text) return;
  const id = await client.findUser(text);
  if (id === undefined) return;
  el.findUser.value = "";
  store.dispatch({ type: "select", conversation: id });
  el.text.focus();
});

store.subscribe(render);
render(store.state);
document.body.dataset["ready"] = "true";
