// Zod schemas of the treasure-hunt game: genesis parameters, table records and inputs.
//
// Records are plain canonical data: integers (world coordinates are integer units, never
// floats, so every distance check is exact), strings, booleans, null, arrays and plain
// objects. The JSON Schemas in schemas/ are generated from the input schemas here, so
// producers written in other languages see exactly what the Sequencer accepts.
import { z } from 'zod';

const int = z.number().int();
const uint = int.nonnegative();

/** Player ids: `[a-z0-9][a-z0-9_-]{0,31}`; the load generator uses zero-padded `p000042` so key order = number order. */
export const PlayerIdSchema = z.string().regex(/^[a-z0-9][a-z0-9_-]{0,31}$/, 'player id: [a-z0-9][a-z0-9_-]{0,31}').describe('Player id, chosen by the game server.');
/** Item ids are assigned by the reducer: `i` and a zero-padded counter. */
export const ItemIdSchema = z.string().regex(/^i[0-9]{1,15}$/, 'item id: i followed by digits').describe('Item id, assigned by the reducer (as seen on the treasure radar).');
export const QuestIdSchema = z.string().regex(/^[a-z0-9][a-z0-9_.-]{0,47}$/, 'quest id: [a-z0-9][a-z0-9_.-]{0,47}');

/** A world coordinate. The upper bound is the world's `worldSize` (checked by the reducer: it is a genesis parameter). */
const coord = uint.max(1_000_000).describe('World coordinate: an integer in [0, worldSize) (worldSize is a genesis param; the reducer rejects OUT_OF_BOUNDS).');

export const POWER_KINDS = ['shovel', 'boots', 'magnet'] as const;
export const PowerKindSchema = z.enum(POWER_KINDS);
export type PowerKind = z.infer<typeof PowerKindSchema>;

export const ITEM_KINDS = ['coin', 'gem', 'chest', 'power', 'loot'] as const;
export const ItemKindSchema = z.enum(ITEM_KINDS);
export type ItemKind = z.infer<typeof ItemKindSchema>;

// --- genesis parameters ------------------------------------------------------------------

/**
 * Genesis `params` of a treasure-hunt shard. Every field has a default, so `{}` (or null) is a
 * small playable world; benchmarks pass e.g. `{ worldSize: 20000, itemsInitial: 1000000 }`.
 */
export const TreasureHuntParamsSchema = z.strictObject({
  /** The world is the square [0, worldSize) × [0, worldSize), integer units. */
  worldSize: int.min(16).max(1_000_000).default(1024),
  /** Items spawned by `init` (genesis) with the shard's seeded rng. */
  itemsInitial: uint.max(5_000_000).default(1000),
  /** onTick spawns only while fewer items than this exist; default max(itemsInitial × 1.25, itemsInitial + 100). */
  itemsMax: uint.max(10_000_000).nullable().default(null),
  /** Items spawned per tick (while below itemsMax). */
  spawnPerTick: uint.max(10_000).default(2),
  /** Side of a geo cell; items are indexed by cell so proximity queries read a few cells, never the whole table. */
  cellSize: int.min(2).max(65_536).default(16),
  /** A dig hits the nearest buried item within this distance of the dug spot. */
  digRadius: int.min(1).max(1024).default(4),
  /** How far from the player a spot (v1) or an item (v2) may be dug. */
  reach: int.min(0).max(1024).default(6),
  /** Surface items (power-ups, loot) are picked up within this distance. */
  pickupRadius: int.min(0).max(1024).default(3),
  /** Longest move per `player.move` input. */
  speed: int.min(1).max(100_000).default(8),
  /** Ticks a power-up lasts; its effect decays in three steps over that time. */
  powerUpTicks: int.min(1).max(1_000_000).default(120),
  /** Ticks dropped loot and spawned power-ups stay on the ground. */
  lootTicks: int.min(1).max(10_000_000).default(600),
});
export type TreasureHuntParamsInput = z.input<typeof TreasureHuntParamsSchema>;

// --- records ----------------------------------------------------------------------------

// A player is two records: `players` (profile and progress) and `positions` (where they stand).
// Moves are most of the traffic and change only the small position record: every changed
// record is rehashed when its tick closes, and hashing cost grows with a record's size.
export const PlayerSchema = z.strictObject({
  name: z.string().max(64),
  online: z.boolean(),
  /** Lifetime points. Never decreases: that is what lets the top-10 be maintained incrementally. */
  score: uint,
  /** Coins carried; dropped as loot when the player leaves. */
  coins: uint,
  /** Items this player opened or picked up. */
  finds: uint,
  power: PowerKindSchema.nullable(),
  /** Tick at which the power-up expires (0 when none). */
  powerUntilTick: uint,
  quest: QuestIdSchema.nullable(),
  /** Index of the next waypoint of `quest`. */
  questStep: uint,
  joinedTick: uint,
});
export type Player = z.infer<typeof PlayerSchema>;

export const PositionSchema = z.strictObject({ x: coord, y: coord });
export type Position = z.infer<typeof PositionSchema>;

export const ItemSchema = z.strictObject({
  kind: ItemKindSchema,
  x: coord,
  y: coord,
  value: uint,
  /** Digs (work units) left before a buried item opens; 0 for surface items. */
  hp: uint,
  buried: z.boolean(),
  /** For `power` items: what it grants. */
  power: PowerKindSchema.nullable(),
  /** Work done on a chest, per player, sorted by player id: [player, work]. Loot is split by it. */
  diggers: z.array(z.tuple([PlayerIdSchema, uint])),
  /** Tick at which a surface item disappears (0: never). */
  expiresTick: uint,
});
export type Item = z.infer<typeof ItemSchema>;

/**
 * The geo index: the items in one cell of `cellSize` × `cellSize`, in insertion order: their ids,
 * and for the i-th id, at[3i..3i+2] = x, y, 1 if buried else 0.
 */
export const CellSchema = z
  .strictObject({ ids: z.array(ItemIdSchema).min(1), at: z.array(uint) })
  .refine((c) => c.at.length === 3 * c.ids.length, 'cells: at holds 3 integers (x, y, buried) per id');
export type Cell = z.infer<typeof CellSchema>;

export const WaypointSchema = z.strictObject({ x: coord, y: coord });

export const QuestSchema = z.strictObject({
  name: z.string().max(128),
  waypoints: z.array(WaypointSchema).min(1).max(32),
  radius: int.min(0).max(4096),
  rewardCoins: uint.max(1_000_000),
  rewardScore: uint.max(1_000_000),
  power: PowerKindSchema.nullable(),
  startTick: uint,
  endTick: uint,
  completions: uint,
  /** How many times the quest was (re)published: a live event patches its rules by publishing again. */
  revision: uint,
});
export type Quest = z.infer<typeof QuestSchema>;

/** The resolved genesis parameters, kept in the state (meta['rules']) so snapshots carry them. */
export const RulesSchema = z.strictObject({
  worldSize: int,
  itemsInitial: uint,
  itemsMax: uint,
  spawnPerTick: uint,
  cellSize: int,
  digRadius: int,
  reach: int,
  pickupRadius: int,
  speed: int,
  powerUpTicks: int,
  lootTicks: int,
});
export type Rules = z.infer<typeof RulesSchema>;

export const CountersSchema = z.strictObject({
  nextItem: uint,
  items: uint,
  playersOnline: uint,
  playersTotal: uint,
  chestsOpened: uint,
  questsCompleted: uint,
});
export type Counters = z.infer<typeof CountersSchema>;

/** meta holds two keys: 'rules' (Rules) and 'counters' (Counters). */
export const MetaSchema = z.union([RulesSchema, CountersSchema]);
export type Meta = Rules | Counters;

export const LeaderboardEntrySchema = z.strictObject({ player: PlayerIdSchema, score: uint });
/** leaderboard['top10']: best scores first, ties by player id ascending. */
export const LeaderboardSchema = z.strictObject({ top: z.array(LeaderboardEntrySchema).max(10) });
export type Leaderboard = z.infer<typeof LeaderboardSchema>;

/** timers['t<tick>']: what expires at that tick (power-ups by player, surface items by id). */
export const TimerSchema = z.strictObject({ power: z.array(PlayerIdSchema), items: z.array(ItemIdSchema) });
export type Timer = z.infer<typeof TimerSchema>;

export const TABLES = {
  players: PlayerSchema,
  positions: PositionSchema,
  items: ItemSchema,
  cells: CellSchema,
  quests: QuestSchema,
  meta: MetaSchema,
  leaderboard: LeaderboardSchema,
  timers: TimerSchema,
};

// --- inputs -----------------------------------------------------------------------------

export const JoinV1 = z.strictObject({ player: PlayerIdSchema, name: z.string().min(1).max(64), x: coord, y: coord });
export const MoveV1 = z.strictObject({ player: PlayerIdSchema, x: coord, y: coord });
export const LeaveV1 = z.strictObject({ player: PlayerIdSchema });
/** v1: dig the spot (x, y); it must be within `reach` of the player; hits the nearest buried item within `digRadius` of the spot. */
export const DigV1 = z.strictObject({ player: PlayerIdSchema, x: coord, y: coord });
/** v2 (reducer version 2 and later): dig a named item seen on the treasure radar; it must be within `reach` of the player. */
export const DigV2 = z.strictObject({ player: PlayerIdSchema, item: ItemIdSchema });
export const PickupV1 = z.strictObject({ player: PlayerIdSchema, item: ItemIdSchema });
/** A live-ops event: publishes (or re-publishes, patching) a quest. */
export const QuestPublishV1 = z.strictObject({
  quest: QuestIdSchema,
  name: z.string().min(1).max(128),
  waypoints: z.array(WaypointSchema).min(1).max(32),
  radius: int.min(0).max(4096),
  rewardCoins: uint.max(1_000_000),
  rewardScore: uint.max(1_000_000),
  power: PowerKindSchema.nullable(),
  durationTicks: int.min(1).max(10_000_000),
});
export const QuestAcceptV1 = z.strictObject({ player: PlayerIdSchema, quest: QuestIdSchema });

export const INPUTS_V1 = {
  'player.join': { 1: JoinV1 },
  'player.move': { 1: MoveV1 },
  'player.leave': { 1: LeaveV1 },
  'item.dig': { 1: DigV1 },
  'item.pickup': { 1: PickupV1 },
  'quest.publish': { 1: QuestPublishV1 },
  'quest.accept': { 1: QuestAcceptV1 },
};

export const INPUTS_V2 = { ...INPUTS_V1, 'item.dig': { 1: DigV1, 2: DigV2 } };

/** Rejection codes of the reducer (data, replayed identically everywhere). */
export const REJECTIONS = [
  'UNKNOWN_PLAYER',
  'PLAYER_OFFLINE',
  'ALREADY_ONLINE',
  'OUT_OF_BOUNDS',
  'MOVE_TOO_FAR',
  'DIG_TOO_FAR',
  'UNKNOWN_ITEM',
  'NOT_BURIED',
  'ITEM_BURIED',
  'PICKUP_TOO_FAR',
  'UNKNOWN_QUEST',
  'QUEST_OVER',
] as const;
export type RejectionCode = (typeof REJECTIONS)[number];
