// One board's table, kept live without jumping: rows are keyed by player and slide to
// their new place, moved rows carry a mark (up, down, new) and the points gained for a
// while, the table changes at most once per `paceMs` (the latest board wins: the data
// stays live, the eye gets time), and a polite live region says what matters. With
// `prefers-reduced-motion` the rows move without sliding.
//
// A page may hold several BoardViews (a board selector shows one at a time) and an
// around-me panel can use one for the caller's neighbours: nothing here knows where
// its boards come from.

import { number, ordinal, signedNumber } from "./words.js";

const reducedMotion = window.matchMedia("(prefers-reduced-motion: reduce)");
const SLIDE = { duration: 700, easing: "cubic-bezier(.2, .7, .2, 1)" };

function cell(tag, className) {
  const el = document.createElement(tag);
  el.className = className;
  return el;
}

export class BoardView {
  /**
   * @param {HTMLTableElement} table a table with an empty tbody
   * @param {{note?: HTMLElement, announcer?: HTMLElement, paceMs?: number, markMs?: number,
   *          announceMs?: number, empty?: string}} options
   */
  constructor(table, { note = null, announcer = null, paceMs = 1000, markMs = 10_000, announceMs = 5000,
    empty = "No scores yet: be the first." } = {}) {
    this.table = table;
    this.body = table.tBodies[0];
    this.note = note;
    this.announcer = announcer;
    this.paceMs = paceMs;
    this.markMs = markMs;
    this.announceMs = announceMs;
    this.emptyText = empty;
    this.rows = new Map(); // user_id -> <tr>
    this.shown = null; // the board on screen
    this.pending = null; // the latest board not yet on screen
    this.version = -1;
    this.meId = null;
    this.lastRender = -Infinity;
    this.timer = null;
    this.lastAnnounced = -Infinity;
    this.announceTimer = null;
    this.updatedAt = 0; // Date.now() when the latest board arrived
    this._sweeper = setInterval(() => this._sweepMarks(), 1000);
    this._setNote("Loading the board…");
  }

  /** Show `board` ({entries, version}); older versions than the one shown are ignored. */
  show(board) {
    if (typeof board.version === "number") {
      if (board.version < this.version) return;
      this.version = board.version;
    }
    this.pending = board;
    this.updatedAt = Date.now();
    if (this.timer) return;
    const wait = this.lastRender + this.paceMs - performance.now();
    if (wait <= 0) this._flush();
    else this.timer = setTimeout(() => this._flush(), wait);
  }

  /** Forget everything shown (another board is about to be shown here). */
  reset() {
    clearTimeout(this.timer);
    this.timer = null;
    this.pending = this.shown = null;
    this.version = -1;
    this.rows.clear();
    this.body.replaceChildren();
    this._setNote("Loading the board…");
  }

  /** Whose row to mark as "you" (null: nobody). */
  setMe(userId) {
    this.meId = userId ?? null;
    for (const [id, row] of this.rows) this._markMine(row, id);
  }

  _flush() {
    this.timer = null;
    const board = this.pending;
    this.pending = null;
    if (!board) return;
    this.lastRender = performance.now();
    this._render(board);
  }

  _render(board) {
    const before = this.shown ? new Map(this.shown.entries.map((e) => [e.user_id, e])) : null;
    const tops = new Map();
    if (before && !reducedMotion.matches) {
      for (const [id, row] of this.rows) tops.set(id, row.getBoundingClientRect().top);
    }
    const changes = [];
    const ordered = board.entries.map((entry) => {
      let row = this.rows.get(entry.user_id);
      if (!row) {
        row = this._makeRow(entry.user_id);
        this.rows.set(entry.user_id, row);
      }
      const previous = before ? before.get(entry.user_id) || null : undefined;
      if (previous !== undefined) {
        const change = this._mark(row, entry, previous);
        if (change) changes.push(change);
      }
      this._fill(row, entry);
      return row;
    });
    const keep = new Set(board.entries.map((e) => e.user_id));
    for (const [id, row] of this.rows) {
      if (!keep.has(id)) {
        row.remove();
        this.rows.delete(id);
      }
    }
    ordered.forEach((row, i) => {
      if (this.body.rows[i] !== row) this.body.insertBefore(row, this.body.rows[i] || null);
    });
    this.shown = board;
    this._setNote(board.entries.length ? "" : this.emptyText);
    if (before && !reducedMotion.matches) this._slide(ordered, tops);
    if (changes.length) this._announce(changes);
  }

  _makeRow(userId) {
    const row = document.createElement("tr");
    const rank = cell("td", "rank");
    const player = cell("th", "player");
    player.scope = "row";
    const name = cell("span", "name");
    const you = cell("span", "you");
    you.textContent = "you";
    player.append(name, you);
    const score = cell("td", "score");
    const change = cell("td", "change");
    change.append(cell("span", "move"), cell("span", "gain"));
    row.append(rank, player, score, change);
    row.dataset.userId = userId;
    this._markMine(row, userId);
    return row;
  }

  _fill(row, entry) {
    row.dataset.rank = entry.rank;
    row.dataset.username = entry.username;
    row.dataset.score = entry.score;
    row.cells[0].textContent = entry.rank;
    row.querySelector(".name").textContent = entry.username;
    row.cells[2].textContent = number(entry.score);
  }

  _markMine(row, userId) {
    const mine = this.meId !== null && Number(userId) === this.meId;
    row.classList.toggle("mine", mine);
    if (mine) row.setAttribute("aria-current", "true");
    else row.removeAttribute("aria-current");
  }

  /** Mark a row that moved or scored since the board before; return what changed, if anything. */
  _mark(row, entry, previous) {
    const places = previous ? previous.rank - entry.rank : null;
    const gained = previous ? entry.score - previous.score : entry.score;
    if (previous && places === 0 && gained === 0) return null;
    let move = "same";
    if (!previous) move = "new";
    else if (places > 0) move = "up";
    else if (places < 0) move = "down";
    // a row that moves again keeps adding up what it gained since it was first marked
    const since = row.dataset.move ? Number(row.dataset.gainTotal || 0) : 0;
    const total = since + gained;
    row.dataset.move = move;
    row.dataset.gainTotal = total;
    row.dataset.markedAt = Date.now();
    const moveText = { new: "new", up: `▲ ${places}`, down: `▼ ${-places}`, same: "" }[move];
    const moveLabel = { new: "new in the top 10", up: `up ${places}`, down: `down ${-places}`, same: "" }[move];
    const moveEl = row.querySelector(".move");
    moveEl.textContent = moveText;
    moveEl.title = moveLabel;
    const gain = row.querySelector(".gain");
    gain.textContent = total ? signedNumber(total) : "";
    gain.dataset.sign = total > 0 ? "up" : "down";
    row.classList.remove("scored");
    if (gained) {
      void row.offsetWidth; // restart the highlight
      row.classList.add("scored");
    }
    return { entry, move, places, gained };
  }

  _sweepMarks() {
    const now = Date.now();
    for (const row of this.rows.values()) {
      if (row.dataset.move && now - Number(row.dataset.markedAt) > this.markMs) {
        delete row.dataset.move;
        delete row.dataset.gainTotal;
        row.querySelector(".move").textContent = "";
        row.querySelector(".gain").textContent = "";
        row.classList.remove("scored");
      }
    }
  }

  _slide(rows, tops) {
    for (const row of rows) {
      const top = tops.get(Number(row.dataset.userId));
      if (top === undefined) {
        row.animate([{ opacity: 0 }, { opacity: 1 }], { duration: 500, easing: "ease-out" });
        continue;
      }
      const dy = top - row.getBoundingClientRect().top;
      if (Math.abs(dy) > 0.5) {
        row.animate([{ transform: `translateY(${dy}px)` }, { transform: "translateY(0)" }], SLIDE);
      }
    }
  }

  /** One polite sentence about the most notable change, at most every `announceMs`. */
  _announce(changes) {
    if (!this.announcer) return;
    const mine = changes.find((c) => c.entry.user_id === this.meId);
    const leader = changes.find((c) => c.entry.rank === 1 && c.move !== "same" && c.move !== "down");
    const risen = changes.find((c) => c.move === "up" || c.move === "new");
    let text;
    if (mine) text = `You are ${ordinal(mine.entry.rank)} with ${number(mine.entry.score)} points.`;
    else if (leader) text = `${leader.entry.username} leads with ${number(leader.entry.score)} points.`;
    else if (risen) text = `${risen.entry.username} is now ${ordinal(risen.entry.rank)}.`;
    else return;
    this._pendingAnnouncement = text;
    if (this.announceTimer) return;
    const wait = this.lastAnnounced + this.announceMs - performance.now();
    const say = () => {
      this.announceTimer = null;
      this.lastAnnounced = performance.now();
      this.announcer.textContent = this._pendingAnnouncement;
    };
    if (wait <= 0) say();
    else this.announceTimer = setTimeout(say, wait);
  }

  _setNote(text) {
    if (!this.note) return;
    this.note.textContent = text;
    this.note.hidden = !text;
  }
}
