// hastack's dashboard: polls /api/state every second and /api/charts every 15 s, and draws
// them. Text goes through textContent only (nothing from the stack is parsed as HTML).
"use strict";

const STATE_EVERY_MS = 1000;
const CHARTS_EVERY_MS = 15000;

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

function fill(tableId, rows, cells) {
  const body = document.querySelector(`#${tableId} tbody`);
  body.replaceChildren(
    ...(rows.length
      ? rows.map((row) => {
          const tr = el("tr");
          for (const [text, cls] of cells(row)) tr.append(el("td", text, cls));
          return tr;
        })
      : [(() => { const tr = el("tr"); const td = el("td", "none", "muted"); td.colSpan = 8; tr.append(td); return tr; })()])
  );
}

function age(seconds) {
  if (seconds === null || seconds === undefined) return "?";
  if (seconds < 120) return `${Math.round(seconds)} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  if (seconds < 172800) return `${(seconds / 3600).toFixed(1)} h`;
  return `${(seconds / 86400).toFixed(1)} d`;
}

function clock(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return isNaN(d) ? String(iso) : d.toISOString().slice(11, 19) + "Z";
}

function drawMembers(state) {
  const box = document.getElementById("members");
  box.replaceChildren(
    ...state.members.map((m) => {
      const card = el("div", null, "member" + (m.name === state.leader ? " leader" : ""));
      card.dataset.member = m.name;
      card.dataset.role = m.role;
      card.append(el("div", m.name, "name"));
      const running = m.state === "running" || m.state === "streaming";
      card.append(el("div", `${m.role} · ${m.state}`, running ? "ok" : "bad"));
      card.append(el("div", `timeline ${m.timeline ?? "?"}`, "muted"));
      if (m.lag_bytes !== null && m.lag_bytes !== undefined) {
        card.append(el("div", `lag ${m.lag_bytes} bytes`, m.lag_bytes > 16 * 1048576 ? "warn" : "muted"));
      }
      return card;
    })
  );
}

function draw(state) {
  document.getElementById("stack").textContent = state.stack;
  const leader = document.getElementById("leader");
  leader.textContent = state.leader ?? "none";
  leader.className = state.leader ? "ok" : "bad";
  document.body.dataset.leader = state.leader ?? "";
  const firing = document.getElementById("firing");
  const pages = state.alerts.filter((a) => a.severity === "P0" || a.severity === "P1");
  firing.textContent = state.alerts.length ? `${state.alerts.length} alert(s) firing` : "no alert";
  firing.className = "pill" + (pages.length ? " bad" : "");
  drawMembers(state);
  fill("alerts", state.alerts, (a) => [[a.name], [a.severity, a.severity === "P0" || a.severity === "P1" ? "bad" : "warn"], [a.node ?? ""], [clock(a.since)], [a.summary, "text"]]);
  // The primary's backend has only the leader UP, the replicas' every node but the leader.
  const expected = (b) => b.state === "DOWN" && ((b.proxy === "pg_primary" && b.server !== state.leader) || (b.proxy === "pg_replicas" && b.server === state.leader));
  fill("backends", state.backends, (b) => [[b.proxy], [b.server], expected(b) ? [`${b.state} (as it should)`, "muted"] : [b.state, b.state === "UP" ? "ok" : b.state === "DOWN" ? "bad" : "warn"]]);
  fill("pools", state.pools, (p) => [[p.database], [p.user], [p.client_active ?? ""], [p.client_waiting ?? "", p.client_waiting ? "warn" : ""], [p.server_active ?? ""], [p.server_idle ?? ""]]);
  fill("apps", state.apps, (a) => [[a.name], [a.instance], [a.up ? "up" : "down", a.up ? "ok" : "bad"]]);
  fill("backups", state.backups, (b) => [[b.repo], [b.at ? new Date(b.at * 1000).toISOString().slice(0, 16) + "Z" : "none"], [age(b.age_s), b.age_s > 26 * 3600 ? "bad" : "ok"]]);
  fill("decisions", state.decisions, (d) => [[clock(d.time)], [d.action], [d.node ?? ""], [d.sentence, "text"]]);
  const body = document.querySelector("#drills tbody");
  fill("drills", state.drills, (d) => [[clock(d.started_at)], [d.scenario], [d.passed ? "passed" : "failed", d.passed ? "ok" : "bad"], [d.rto_s === null ? "" : `${d.rto_s} s`], [d.healthy_again_s === null ? "" : `${d.healthy_again_s} s`], [d.lost_acked_writes ?? ""], [d.alerts.join(", "), "text"]]);
  // Each drill's name links to its full report (timeline chart included).
  body.querySelectorAll("tr").forEach((tr, i) => {
    const drill = state.drills[i];
    if (!drill) return;
    const cell = tr.children[1];
    const link = el("a", drill.scenario);
    link.href = `/drills/${encodeURIComponent(drill.report.replace(/\.json$/, ".html"))}`;
    cell.replaceChildren(link);
  });
  const errors = document.getElementById("errors");
  errors.hidden = state.errors.length === 0;
  errors.textContent = state.errors.length ? "not answering: " + state.errors.join("; ") : "";
  document.getElementById("updated").textContent = "updated " + new Date(state.at * 1000).toISOString().slice(11, 19) + "Z";
  document.body.dataset.ready = "1";
}

function drawCharts(data) {
  const box = document.getElementById("charts");
  box.replaceChildren(
    ...data.charts.map((c) => {
      const card = el("div", null, "chart");
      const title = el("div", c.title);
      const last = c.points.length ? c.points[c.points.length - 1][1] : null;
      title.append(el("span", last === null ? (c.error ? "n/a" : "no data") : `${last.toFixed(last < 10 ? 2 : 0)} ${c.unit}`, "value"));
      card.append(title);
      const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
      svg.setAttribute("viewBox", "0 0 300 60");
      svg.setAttribute("preserveAspectRatio", "none");
      if (c.points.length > 1) {
        const t0 = c.points[0][0], t1 = c.points[c.points.length - 1][0];
        const values = c.points.map((p) => p[1]);
        const lo = Math.min(0, ...values), hi = Math.max(...values, lo + 1e-9);
        const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
        line.setAttribute("points", c.points.map(([t, v]) => `${((t - t0) / Math.max(t1 - t0, 1)) * 300},${58 - ((v - lo) / (hi - lo)) * 56}`).join(" "));
        svg.append(line);
      }
      card.append(svg);
      return card;
    })
  );
  document.body.dataset.charts = "1";
}

async function poll(url, every, onData) {
  for (;;) {
    try {
      const answer = await fetch(url, { cache: "no-store", credentials: "same-origin" });
      if (answer.ok) onData(await answer.json());
      else document.getElementById("updated").textContent = `HTTP ${answer.status}`;
    } catch (err) {
      document.getElementById("updated").textContent = "dashboard unreachable";
    }
    await new Promise((resolve) => setTimeout(resolve, every));
  }
}

poll("/api/state", STATE_EVERY_MS, draw);
poll("/api/charts", CHARTS_EVERY_MS, drawCharts);
