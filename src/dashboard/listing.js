// Which page of tasks the table shows: filters, and the cursors of the pages before it.
import { api, nextCursor } from "./api.js";

export const PAGE_SIZE = 50;

export class Listing {
  constructor() {
    this.status = "";
    this.type = "";
    this.cursors = [null]; // cursors[i] opens page i; the last one is the page shown
    this.next = null;
  }

  get page() {
    return this.cursors.length;
  }

  filter(status, type) {
    this.status = status;
    this.type = type;
    this.cursors = [null];
  }

  older() {
    if (this.next) this.cursors.push(this.next);
  }

  newer() {
    if (this.cursors.length > 1) this.cursors.pop();
  }

  // Whether a task with this status belongs to the filtered list.
  admits(status) {
    return !this.status || this.status === status;
  }

  async load() {
    const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
    if (this.status) query.set("status", this.status);
    if (this.type) query.set("type", this.type);
    const cursor = this.cursors[this.cursors.length - 1];
    if (cursor) query.set("cursor", cursor);
    const { data, headers } = await api("GET", `/api/tasks?${query}`);
    this.next = nextCursor(headers);
    return data;
  }
}
