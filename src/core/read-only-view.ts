// Checked mode's read-only records: `table.get(key)` returns a view that refuses writes.
//
// A view is a Proxy over the live record rather than a frozen deep copy, for two reasons:
//  - it reads exactly what unchecked mode reads (the live record, including later changes made
//    through `mut`), so checked and unchecked replays of a correct reducer compute the same
//    state; a copy would freeze the record as of the `get` call;
//  - a write is remembered even when the reducer catches the throw, so a reducer that swallows
//    the error is still reported when its call returns (the write never reaches the record).
// Bytes (Uint8Array) cannot be proxied usefully (their methods need the real receiver), so a
// view of a record hands out copies of them.
import { PlayoutError } from './errors.js';

/** One violation per reducer call is enough to stop the shard; the first is kept. */
export class ReadOnlyViews {
  violation: PlayoutError | null = null;
  private readonly cache = new WeakMap<object, object>();

  /** A read-only view of `value` (a record or a part of it); `path` names it in errors. */
  view<T>(value: T, path: string): T {
    if (value === null || typeof value !== 'object') return value;
    if (value instanceof Uint8Array) return value.slice() as T;
    const cached = this.cache.get(value);
    if (cached !== undefined) return cached as T;
    const proxy = new Proxy(value as object, new ViewHandler(this, path));
    this.cache.set(value, proxy);
    return proxy as T;
  }

  refuse(path: string, what: string): never {
    const err = new PlayoutError(
      'PLAYOUT_FROZEN_RECORD',
      `Cannot ${what} ${path}: records from table.get() are read-only in checked mode; use table.mut(key) to change a record`,
      { path, expected: 'a record obtained with table.mut(key)', received: 'a record obtained with table.get(key)' },
    );
    this.violation ??= err;
    throw err;
  }

  /** The violation recorded since the last call, cleared. */
  take(): PlayoutError | null {
    const v = this.violation;
    this.violation = null;
    return v;
  }
}

const propName = (key: string | symbol): string => (typeof key === 'symbol' ? `[${String(key)}]` : /^\d+$/.test(key) ? `[${key}]` : `.${key}`);

class ViewHandler implements ProxyHandler<object> {
  private readonly views: ReadOnlyViews;
  private readonly path: string;

  constructor(views: ReadOnlyViews, path: string) {
    this.views = views;
    this.path = path;
  }

  get(target: object, key: string | symbol, receiver: unknown): unknown {
    const v = Reflect.get(target, key, receiver);
    if (v === null || typeof v !== 'object') return v;
    return this.views.view(v, this.path + propName(key));
  }

  set(_target: object, key: string | symbol): boolean {
    return this.views.refuse(this.path + propName(key), 'write');
  }

  deleteProperty(_target: object, key: string | symbol): boolean {
    return this.views.refuse(this.path + propName(key), 'delete');
  }

  defineProperty(_target: object, key: string | symbol): boolean {
    return this.views.refuse(this.path + propName(key), 'define');
  }

  setPrototypeOf(): boolean {
    return this.views.refuse(this.path, 'change the prototype of');
  }

  preventExtensions(): boolean {
    return this.views.refuse(this.path, 'freeze');
  }
}
