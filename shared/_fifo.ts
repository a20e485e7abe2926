/**
 * A first-in, first-out queue whose `shift` is O(1): items are taken from a moving head and the
 * array is compacted once the taken part is at least half of it. `Array.prototype.shift` moves
 * every remaining item, which is quadratic for a long queue drained one by one.
 *
 * @example
 * ```ts
 * import { Fifo } from "./_fifo.ts";
 * const queue = new Fifo<string>();
 * queue.push("a");
 * queue.push("b");
 * console.assert(queue.shift() === "a" && queue.length === 1);
 * ```
 *
 * @module
 */

/** See the module doc. */
export class Fifo<T> {
  #items: (T | undefined)[] = [];
  #head = 0;

  /** Items in the queue. */
  get length(): number {
    return this.#items.length - this.#head;
  }

  /** Adds `item` at the end. */
  push(item: T): void {
    this.#items.push(item);
  }

  /** Removes and returns the first item, or `undefined` when empty. */
  shift(): T | undefined {
    if (this.#head >= this.#items.length) return undefined;
    const item = this.#items[this.#head];
    this.#items[this.#head++] = undefined; // no reference kept to what was taken
    if (this.#head === this.#items.length) {
      this.#items = [];
      this.#head = 0;
    } else if (this.#head >= 1024 && this.#head * 2 >= this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    return item;
  }
}
