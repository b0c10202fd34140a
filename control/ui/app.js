// The console's shell: sign-in, the session, navigation between pages.

import { api, session, setCsrf, whenSignedOut, ApiError } from "./api.js";
import { h, fill, toast } from "./dom.js";
import overview from "./pages/overview.js";
import tenants from "./pages/tenants.js";
import keys from "./pages/keys.js";
import routing from "./pages/routing.js";
import logs from "./pages/logs.js";
import alerts from "./pages/alerts.js";
import audit from "./pages/audit.js";
import dataplanes from "./pages/dataplanes.js";

const PAGES = { overview, tenants, keys, routing, logs, alerts, audit, dataplanes };
const main = document.getElementById("main");
const nav = document.getElementById("nav");
const who = document.getElementById("who");
const signout = document.getElementById("signout");

/** Who is signed in: {name, scope, csrf, idle_secs}. */
export const me = { name: "", scope: "", tenant: null };

function signedIn(s) {
  me.name = s.name;
  me.scope = s.scope;
  me.tenant = s.scope.startsWith("tenant:") ? s.scope.slice(7) : null;
  setCsrf(s.csrf);
  // Operator-wide pages are outside a tenant token's scope.
  for (const a of nav.querySelectorAll('a[data-page="alerts"], a[data-page="audit"], a[data-page="dataplanes"]')) {
    a.hidden = !!me.tenant;
  }
  nav.hidden = false;
  signout.hidden = false;
  who.textContent = `${s.name} (${s.scope})`;
}

function signInPage(message) {
  setCsrf("");
  nav.hidden = true;
  signout.hidden = true;
  who.textContent = "";
  const input = h("input", {
    type: "password",
    name: "token",
    autocomplete: "off",
    placeholder: "admin token (DATA/admin.token or sat-…)",
    required: true,
  });
  const err = h("p", { class: "bad", id: "signin-error" }, message || "");
  const f = h(
    "form",
    { class: "card signin", id: "signin" },
    h("h1", {}, "Sign in to Sluice"),
    h("p", { class: "muted" }, "Paste an admin token. It is exchanged for a session cookie and not kept by this page."),
    input,
    h("p", {}, h("button", { type: "submit" }, "Sign in")),
    err,
  );
  f.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const token = input.value;
    input.value = "";
    try {
      signedIn(await session.signIn({ token }));
      route();
    } catch (e) {
      err.textContent = e.message;
    }
  });
  fill(main, f);
  input.focus();
}

let current = 0;

async function route() {
  const name = (location.hash.match(/^#\/(\w+)/) || [])[1] || "overview";
  const page = PAGES[name] || overview;
  for (const a of nav.querySelectorAll("a")) a.classList.toggle("active", a.dataset.page === name);
  const ticket = ++current;
  fill(document.getElementById("toast"));
  const root = h("div", { "data-page": name });
  fill(main, root);
  try {
    await page(root, { me, stale: () => ticket !== current });
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return;
    root.append(h("p", { class: "bad" }, e.message || String(e)));
  }
}

/** Signs in with the one-time code of a sign-in link, if the address has
 * one; the code is taken out of the address bar first. */
async function redeemLink() {
  const m = location.hash.match(/^#code=([0-9a-f]+)$/);
  if (!m) return false;
  history.replaceState(null, "", location.pathname + "#/overview");
  try {
    signedIn(await session.signIn({ code: m[1] }));
    route();
  } catch (e) {
    signInPage(`That sign-in link did not work: ${e.message}`);
  }
  return true;
}

async function start() {
  whenSignedOut((m) => signInPage(m));
  window.addEventListener("hashchange", async () => {
    if (await redeemLink()) return;
    if (!nav.hidden) route();
  });
  signout.addEventListener("click", async () => {
    try {
      await session.signOut();
    } catch (e) {
      toast(e.message, true);
    }
    signInPage("Signed out.");
  });
  // A sign-in link carries a one-time code in the fragment, which the
  // browser never sends to a server.
  if (await redeemLink()) return;
  try {
    signedIn(await session.get());
  } catch {
    return signInPage();
  }
  route();
}

start();
export { api };
