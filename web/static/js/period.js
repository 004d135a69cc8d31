// The chosen board's period: its name and the countdown to its end (to the next season's
// start between seasons), and the final standings of its last closed period, read from
// the API or taken from a `period_closed` event as it arrives. Emits "ended" once when
// the countdown reaches the period's end.

import { call } from "./api.js";
import { BoardView } from "./board.js";
import { countdown, number, periodName, when } from "./words.js";

const $ = (id) => document.getElementById(id);

export class PeriodPanel extends EventTarget {
  constructor() {
    super();
    this.board = null; // {id, window, period, next_reset_at} of GET /api/boards
    this.endedFor = null; // the period whose end was reported
    this.ticket = 0; // the last-period load that may still show its answer
    this.finals = new BoardView($("last-table"), { live: false, paceMs: 0 });
    setInterval(() => this._tick(), 1000);
  }

  /** Show this board's period (and forget the last period shown of another board). */
  setBoard(board) {
    this.board = board;
    this._tick();
  }

  _tick() {
    const board = this.board;
    const name = $("period-name");
    const clock = $("countdown");
    $("period").hidden = !board;
    if (!board) return;
    const { period } = board;
    const resetAt = board.next_reset_at;
    clock.title = resetAt ? when(resetAt) : "";
    if (board.window === "all_time") {
      name.textContent = "All-time totals";
      clock.textContent = "never reset";
      return;
    }
    if (!period) {
      name.textContent = "No season running";
      clock.textContent = resetAt ? `the next starts in ${countdown(resetAt - Date.now())}` : "";
      return;
    }
    name.textContent = periodName(board.window, period);
    const left = period.ends_at - Date.now();
    if (left > 0) {
      clock.textContent = `ends in ${countdown(left)}`;
      return;
    }
    clock.textContent = "ended: final standings once every score is in";
    if (this.endedFor !== period.key) {
      this.endedFor = period.key;
      this.dispatchEvent(new CustomEvent("ended", { detail: board.id }));
    }
  }

  /** Read the board's last closed period and its final top 10 (none on the all-time board). */
  async loadLast(board) {
    const ticket = ++this.ticket;
    $("last-period").hidden = true;
    if (!board || board.window === "all_time") return;
    const list = await call("GET", `/api/boards/${encodeURIComponent(board.id)}/periods?limit=1`);
    if (ticket !== this.ticket || !list.ok || !list.data.periods.length) return;
    const period = list.data.periods[0];
    const page = await call("GET",
      `/api/boards/${encodeURIComponent(board.id)}?limit=10&period=${encodeURIComponent(period.key)}`);
    if (ticket !== this.ticket || !page.ok) return;
    this._showLast(board, period, page.data.entries, false);
  }

  /** A `period_closed` event of the chosen board: its final standings, then the next
   * period (null: no season running); returns a sentence to announce. */
  closed(data) {
    this.ticket += 1;
    const board = this.board;
    const same = board.period && board.period.key === data.period;
    const period = same ? board.period : { key: data.period };
    this._showLast(board, period, data.entries, true);
    board.period = data.next_period;
    board.next_reset_at = data.next_period ? data.next_period.ends_at : null;
    this._tick();
    const winner = data.entries[0];
    const name = periodName(board.window, period);
    return winner ? `${name} has ended: ${winner.username} won with ${number(winner.score)} points.`
      : `${name} has ended.`;
  }

  _showLast(board, period, entries, fresh) {
    const section = $("last-period");
    const winner = entries[0];
    $("last-title").textContent = `${fresh ? "Just ended" : "Final standings"}: ${periodName(board.window, period)}`;
    $("last-winner").textContent = winner ? `won by ${winner.username} with ${number(winner.score)} points`
      + `${period.revised_at ? " (revised)" : ""}` : "nobody scored";
    this.finals.reset();
    this.finals.show({ entries });
    $("last-table").hidden = !entries.length;
    section.dataset.fresh = fresh;
    section.open = fresh;
    section.hidden = false;
  }
}
