// Further pages of the chosen board's period below its live top 10, read on request
// (GET /api/boards/<board>?period=&cursor=). They are a snapshot, said so with its time;
// each page continues after the last entry given, so a player who did not move is never
// shown twice or skipped.

import { call } from "./api.js";
import { BoardView } from "./board.js";
import { errorWords } from "./words.js";

const $ = (id) => document.getElementById(id);
const TOP = 10;
const PAGE = 10;

export class MorePages {
  constructor() {
    this.view = new BoardView($("more-table"), { live: false, paceMs: 0 });
    this.where = ""; // "board/period" of the pages shown
    this.board = this.period = null;
    this.reset();
    $("show-more").addEventListener("click", () => this.more());
  }

  /** Forget the pages shown. */
  reset() {
    this.ticket = (this.ticket || 0) + 1;
    this.cursor = null;
    this.entries = [];
    this.done = false;
    this.view.reset();
    $("more").hidden = true;
    $("show-more").hidden = true;
  }

  /** The live board of `board`'s `period` shows `count` entries: offer more when it is full. */
  offer(board, period, count) {
    if (`${board}/${period}` !== this.where) {
      this.where = `${board}/${period}`;
      this.board = board;
      this.period = period;
      this.reset();
    }
    $("show-more").hidden = this.done || count < TOP;
  }

  async more() {
    const ticket = this.ticket;
    const first = this.cursor === null;
    const query = new URLSearchParams({ limit: first ? TOP + PAGE : PAGE });
    if (this.period) query.set("period", this.period);
    if (!first) query.set("cursor", this.cursor);
    const button = $("show-more");
    button.disabled = true;
    const result = await call("GET", `/api/boards/${encodeURIComponent(this.board)}?${query}`);
    button.disabled = false;
    if (ticket !== this.ticket) return;
    const note = $("more-note");
    $("more").hidden = false;
    if (!result.ok) {
      note.textContent = `More of the board could not be read: ${errorWords(result.error, result)}`;
      return;
    }
    const known = new Set(this.entries.map((entry) => entry.user_id));
    const entries = (first ? result.data.entries.slice(TOP) : result.data.entries).filter((e) => !known.has(e.user_id));
    this.entries.push(...entries);
    this.cursor = result.data.next_cursor;
    this.done = !this.cursor;
    button.hidden = this.done;
    this.view.show({ entries: this.entries });
    $("more-table").hidden = !this.entries.length;
    const time = new Date(result.data.generated_at).toLocaleTimeString();
    note.textContent = this.entries.length
      ? `As of ${time}; below the top 10 the board is not live.${this.done ? " That is everyone." : ""}`
      : "Nobody else is on this board yet.";
  }
}
