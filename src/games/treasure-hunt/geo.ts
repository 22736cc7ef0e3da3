// The geo index of items: every item is listed in the cell of `cellSize` × `cellSize` that holds
// it (cells['<cx>:<cy>']), so a proximity query reads the few cells overlapping the query's
// square instead of scanning an items table that may hold a million records. The index lives
// in a state table, not in a derived in-memory structure: it is then part of the digest and of
// snapshots, and a restored machine needs no rebuild pass.
import type { ReadonlyDeep, StateTable } from '../../core/index.js';
import type { Cell, Item } from './schemas.js';

// Cell keys are interned: a proximity query builds up to four keys, and a fresh string must be
// flattened and hashed again by every Map lookup, where an interned one carries its hash.
// The cache holds strings only (derived from their numbers), never state, so it cannot make
// two replays differ; it is bounded and simply cleared when full.
const KEY_CACHE_MAX = 1 << 16;
const keyCache = new Map<number, string>();

export function cellKey(cx: number, cy: number): string {
  const n = cx * 0x100000 + cy; // cx, cy < 2^20: worldSize ≤ 10^6 and cellSize ≥ 2
  let key = keyCache.get(n);
  if (key === undefined) {
    if (keyCache.size >= KEY_CACHE_MAX) keyCache.clear();
    key = `${cx}:${cy}`;
    keyCache.set(n, key);
  }
  return key;
}

export function dist2(ax: number, ay: number, bx: number, by: number): number {
  const dx = ax - bx;
  const dy = ay - by;
  return dx * dx + dy * dy;
}

/** Add an item id to its cell (creating the cell). */
export function indexItem(cells: StateTable<Cell>, cellSize: number, id: string, x: number, y: number): void {
  const key = cellKey((x / cellSize) | 0, (y / cellSize) | 0);
  const cell = cells.mut(key);
  if (cell === undefined) cells.set(key, { items: [id] });
  else cell.items.push(id);
}

/** Remove an item id from its cell (deleting the cell when it becomes empty). */
export function unindexItem(cells: StateTable<Cell>, cellSize: number, id: string, x: number, y: number): void {
  const key = cellKey((x / cellSize) | 0, (y / cellSize) | 0);
  const seen = cells.get(key);
  if (seen === undefined) return;
  if (seen.items.length === 1 && seen.items[0] === id) {
    cells.delete(key);
    return;
  }
  const cell = cells.mut(key)!;
  const at = cell.items.indexOf(id);
  if (at >= 0) cell.items.splice(at, 1);
}

export type ItemFilter = 0 | 1 | 2;
/** Filters of `nearestItem`. */
export const ANY = 0 as ItemFilter;
export const BURIED = 1 as ItemFilter;
export const SURFACE = 2 as ItemFilter;

/**
 * The id of the item nearest to (x, y) within `radius` (ties: the smaller id), or null.
 * Reads only the cells overlapping the square of side 2 × radius around the point.
 */
export function nearestItem(
  cells: StateTable<Cell>,
  items: StateTable<Item>,
  cellSize: number,
  x: number,
  y: number,
  radius: number,
  filter: ItemFilter,
): string | null {
  const r2 = radius * radius;
  const cx0 = Math.max(0, ((x - radius) / cellSize) | 0);
  const cy0 = Math.max(0, ((y - radius) / cellSize) | 0);
  const cx1 = ((x + radius) / cellSize) | 0;
  const cy1 = ((y + radius) / cellSize) | 0;
  let best: string | null = null;
  let bestD2 = r2 + 1;
  for (let cx = cx0; cx <= cx1; cx++) {
    for (let cy = cy0; cy <= cy1; cy++) {
      const cell = cells.get(cellKey(cx, cy));
      if (cell === undefined) continue;
      const ids = cell.items;
      for (let i = 0; i < ids.length; i++) {
        const id = ids[i]!;
        const item = items.get(id);
        if (item === undefined) continue;
        if (filter === BURIED ? !item.buried : filter === SURFACE ? item.buried : false) continue;
        const d2 = dist2(x, y, item.x, item.y);
        if (d2 < bestD2 || (d2 === bestD2 && best !== null && id < best)) {
          best = id;
          bestD2 = d2;
        }
      }
    }
  }
  return best;
}

/** Every item within `radius` of (x, y), in cell order (for views and tests; the reducer uses `nearestItem`). */
export function itemsWithin(cells: StateTable<Cell>, items: StateTable<Item>, cellSize: number, x: number, y: number, radius: number): [string, ReadonlyDeep<Item>][] {
  const out: [string, ReadonlyDeep<Item>][] = [];
  const r2 = radius * radius;
  const cx0 = Math.max(0, ((x - radius) / cellSize) | 0);
  const cy0 = Math.max(0, ((y - radius) / cellSize) | 0);
  const cx1 = ((x + radius) / cellSize) | 0;
  const cy1 = ((y + radius) / cellSize) | 0;
  for (let cx = cx0; cx <= cx1; cx++) {
    for (let cy = cy0; cy <= cy1; cy++) {
      const cell = cells.get(cellKey(cx, cy));
      if (cell === undefined) continue;
      for (const id of cell.items) {
        const item = items.get(id);
        if (item !== undefined && dist2(x, y, item.x, item.y) <= r2) out.push([id, item]);
      }
    }
  }
  return out;
}
