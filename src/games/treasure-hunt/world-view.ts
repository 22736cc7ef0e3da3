// What a game client sees of the world: the treasure radar. The load generator steers its
// simulated players with it; it reads a machine's tables and never changes them.
import type { StateTable } from '../../core/index.js';
import { BURIED, SURFACE, nearestItem } from './geo.js';
import type { Cell, Item, Rules } from './schemas.js';

export interface ItemSighting {
  readonly id: string;
  readonly x: number;
  readonly y: number;
  readonly kind: Item['kind'];
  /** Digs left before it opens (0 on the surface). */
  readonly hp: number;
}

export interface WorldView {
  /** The buried item nearest to (x, y) within `radius`, or null. */
  nearestBuried(x: number, y: number, radius: number): ItemSighting | null;
  /** The surface item (power-up, loot) nearest to (x, y) within `radius`, or null. */
  nearestSurface(x: number, y: number, radius: number): ItemSighting | null;
  /** The item, or null once it was dug up, picked up or expired. */
  item(id: string): ItemSighting | null;
}

/** A view of a treasure-hunt machine's tables (`machine.tables`), read-only. */
export function worldViewOf(tables: Readonly<Record<string, StateTable>>): WorldView {
  const items = tables['items'] as StateTable<Item> | undefined;
  const cells = tables['cells'] as StateTable<Cell> | undefined;
  const meta = tables['meta'] as StateTable<Rules> | undefined;
  if (items === undefined || cells === undefined || meta === undefined) throw new TypeError('worldViewOf: not the tables of a treasure-hunt machine');
  const cellSize = meta.get('rules')!.cellSize;
  const sighting = (id: string | null): ItemSighting | null => {
    if (id === null) return null;
    const item = items.get(id);
    return item === undefined ? null : { id, x: item.x, y: item.y, kind: item.kind, hp: item.hp };
  };
  return {
    nearestBuried: (x, y, radius) => {
      // Widen the search ring by ring: in a populated world the nearest item is usually a cell
      // away, and one query over the whole radar reads (2·radius/cellSize)² cells.
      for (let r = Math.min(cellSize, radius); ; r = Math.min(2 * r, radius)) {
        const id = nearestItem(cells, cellSize, x, y, r, BURIED);
        if (id !== null || r >= radius) return sighting(id);
      }
    },
    nearestSurface: (x, y, radius) => sighting(nearestItem(cells, cellSize, x, y, radius, SURFACE)),
    item: (id) => sighting(id),
  };
}
