// The signed-in player's place on the chosen board (GET /api/boards/<board>/around/me):
// their own row with the players just above and below, and below the top 10 the gap to
// 10th place. Read again as soon as one of their results arrives, and at a calm pace
// while other players' scores move the board.

import { BoardView } from "./board.js";
import { session } from "./session.js";
import { number, ordinal } from "./words.js";

const $ = (id) => document.getElementById(id);
const NEIGHBOURS = 5; // the player's row in the middle of five
const CALM_MS = 5000;
const TOP = 10;

export class AroundMe {
  constructor() {
    this.view = new BoardView($("around-table"), { live: false, paceMs: 0 });
    this.board = null; // the board's id; null: no panel (signed out, the big screen)
    this.me = null; // {rank, score}, null when not on the board
    this.total = 0;
    this.top = []; // the live top 10
    this.loadedAt = 0;
    this.later = null;
    this.ticket = 0;
  }

  /** Show the player's place on `board` (null: hide the panel); `again`: read it again
   * even when it is the board shown (a new period began). */
  setBoard(board, again = false) {
    if (board === this.board && !again) return;
    this.board = board;
    this.me = null;
    this.top = [];
    this.ticket += 1;
    clearTimeout(this.later);
    this.later = null;
    this.view.reset();
    $("around").hidden = true;
    if (board) this.load();
  }

  /** The live top 10 changed: show the player's place from it, or read it again (calmly) below it. */
  setTop(entries) {
    this.top = entries;
    if (!this.board) return;
    const mine = entries.find((entry) => entry.user_id === session.userId);
    if (mine) {
      this.me = { rank: mine.rank, score: mine.score };
      this._render();
      return;
    }
    const wait = this.loadedAt + CALM_MS - Date.now();
    if (wait <= 0) this.load();
    else if (!this.later) this.later = setTimeout(() => this.load(), wait);
    this._render();
  }

  /** Read the player's place now (one of their results was applied, or the board moved). */
  async load() {
    clearTimeout(this.later);
    this.later = null;
    const board = this.board;
    if (!board || !session.signedIn) return;
    const ticket = ++this.ticket;
    this.loadedAt = Date.now();
    const result = await session.call("GET", `/api/boards/${encodeURIComponent(board)}/around/me?limit=${NEIGHBOURS}`);
    if (ticket !== this.ticket || !result.ok) return;
    this.me = result.data.me;
    this.total = result.data.total;
    this.view.show({ entries: result.data.entries });
    this._render();
  }

  _render() {
    if (!this.board) return;
    const me = this.me;
    const below = Boolean(me) && me.rank > TOP;
    const tenth = this.top.length >= TOP ? this.top[TOP - 1] : null;
    $("around-summary").textContent = me
      ? `You are ${ordinal(me.rank)} of ${number(Math.max(this.total, me.rank))} with ${number(me.score)} points.`
      : "You have no points on this board in this period yet.";
    const gap = $("around-gap");
    gap.hidden = !(below && tenth);
    if (below && tenth) {
      const points = tenth.score - me.score;
      gap.textContent = `${number(points)} ${points === 1 ? "point" : "points"} behind 10th place (${tenth.username}).`;
    }
    $("around-table").hidden = !below;
    $("around").hidden = false;
  }
}
