/**
 * PrekeyStore and KeyPackageStore on SQLite, over two generic tables: one-time items in
 * per-device stocks and single-valued slots (see auth_rules.ts for the names). A claim reads
 * and deletes one item inside one transaction, so no item is ever handed out twice.
 */
import type { DatabaseSync, StatementSync } from "node:sqlite";
import {
  type ClaimedBundle,
  type ClaimOptions,
  KeyLimitError,
  type KeyPackage,
  type KeyPackageStore,
  type OneTimeKind,
  type OneTimePrekey,
  type PrekeyCounts,
  type PrekeyStore,
  type SignedPrekey,
} from "../auth_ports.ts";
import {
  checkDeviceRef,
  checkMs,
  keyPackageFromItem,
  keyPackageItem,
  keyPackageItems,
  keyPackageSlot,
  keyPackageStock,
  prekeyFromItem,
  prekeyItem,
  prekeyItems,
  prekeyStock,
  signedPrekeyFromItem,
  signedPrekeyItem,
  SLOT_LAST_RESORT_KEM,
  SLOT_SIGNED_PREKEY,
  type SlotValue,
  type StockItem,
  validateUpload,
} from "../auth_rules.ts";
import type { DeviceRef } from "../ports.ts";
import { blob, immediate, type Row } from "./sqlite_tx.ts";

/** Stocks and slots of devices: the storage both key stores share. */
export class SqliteKeyShelf {
  readonly #db: DatabaseSync;
  readonly #count: StatementSync;
  readonly #countIds: StatementSync;
  readonly #upsert: StatementSync;
  readonly #clear: StatementSync;
  readonly #first: StatementSync;
  readonly #take: StatementSync;
  readonly #setSlot: StatementSync;
  readonly #getSlot: StatementSync;

  constructor(db: DatabaseSync) {
    this.#db = db;
    const stock = "account_id = ? AND device_id = ? AND stock = ?";
    this.#count = db.prepare(`SELECT count(*) AS n FROM one_time_keys WHERE ${stock}`);
    this.#countIds = db.prepare(
      `SELECT count(*) AS n FROM one_time_keys WHERE ${stock}
       AND item_id IN (SELECT value FROM json_each(?))`,
    );
    this.#upsert = db.prepare(
      `INSERT INTO one_time_keys (account_id, device_id, stock, item_id, data, signature)
       VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT DO UPDATE SET data = excluded.data, signature = excluded.signature`,
    );
    this.#clear = db.prepare(`DELETE FROM one_time_keys WHERE ${stock}`);
    this.#first = db.prepare(
      `SELECT item_id, data, signature FROM one_time_keys WHERE ${stock}
       ORDER BY item_id LIMIT 1`,
    );
    this.#take = db.prepare(`DELETE FROM one_time_keys WHERE ${stock} AND item_id = ?`);
    this.#setSlot = db.prepare(
      `INSERT INTO device_key_slots (account_id, device_id, slot, item_id, data, signature,
         uploaded_at) VALUES (?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT DO UPDATE SET item_id = excluded.item_id, data = excluded.data,
         signature = excluded.signature, uploaded_at = excluded.uploaded_at`,
    );
    this.#getSlot = db.prepare(
      `SELECT item_id, data, signature, uploaded_at FROM device_key_slots
       WHERE account_id = ? AND device_id = ? AND slot = ?`,
    );
  }

  /**
   * Adds items to a stock (emptying it first when `replace`); ids already present are
   * replaced. Beyond `maxTotal` nothing changes and KeyLimitError names the limit.
   */
  add(
    device: DeviceRef,
    stock: string,
    items: StockItem[],
    maxTotal: number,
    replace: boolean,
    what: string,
  ): number {
    validateUpload(items, maxTotal);
    const key = [device.accountId, device.deviceId, stock] as const;
    return immediate(this.#db, () => {
      const stored = replace ? 0 : this.#countOf(this.#count.get(...key));
      const present = replace || stored === 0
        ? 0
        : this.#countOf(this.#countIds.get(...key, JSON.stringify(items.map((i) => i.itemId))));
      if (stored + items.length - present > maxTotal) throw new KeyLimitError(maxTotal, what);
      if (replace) this.#clear.run(...key);
      for (const item of items) {
        this.#upsert.run(...key, item.itemId, item.data, item.signature ?? null);
      }
      return this.#countOf(this.#count.get(...key));
    });
  }

  /**
   * Removes and returns one item of each stock (undefined for an empty one), all in one
   * transaction: a bundle costs one commit.
   */
  claim(device: DeviceRef, stocks: string[]): (StockItem | undefined)[] {
    return immediate(this.#db, () =>
      stocks.map((stock) => {
        const key = [device.accountId, device.deviceId, stock] as const;
        const row = this.#first.get(...key) as Row | undefined;
        if (!row) return undefined;
        this.#take.run(...key, String(row.item_id));
        return itemFromRow(row);
      }));
  }

  count(device: DeviceRef, stock: string): number {
    return this.#countOf(this.#count.get(device.accountId, device.deviceId, stock));
  }

  setSlot(device: DeviceRef, slot: string, value: SlotValue): void {
    this.#setSlot.run(
      device.accountId,
      device.deviceId,
      slot,
      value.itemId,
      value.data,
      value.signature ?? null,
      value.uploadedAtMs ?? null,
    );
  }

  slot(device: DeviceRef, slot: string): SlotValue | undefined {
    const row = this.#getSlot.get(device.accountId, device.deviceId, slot) as Row | undefined;
    if (!row) return undefined;
    return {
      ...itemFromRow(row),
      ...(row.uploaded_at !== null ? { uploadedAtMs: Number(row.uploaded_at) } : {}),
    };
  }

  #countOf(row: unknown): number {
    return Number((row as Row).n);
  }
}

function itemFromRow(row: Row): StockItem {
  const signature = blob(row.signature);
  return {
    itemId: String(row.item_id),
    data: blob(row.data)!,
    ...(signature ? { signature } : {}),
  };
}

export class SqlitePrekeys implements PrekeyStore {
  readonly #shelf: SqliteKeyShelf;

  constructor(shelf: SqliteKeyShelf) {
    this.#shelf = shelf;
  }

  setSignedPrekey(device: DeviceRef, prekey: SignedPrekey, atMs: number): Promise<void> {
    return Promise.try(() => {
      checkDeviceRef(device);
      checkMs(atMs, "atMs");
      const item = signedPrekeyItem(prekey);
      this.#shelf.setSlot(device, SLOT_SIGNED_PREKEY, { ...item, uploadedAtMs: atMs });
    });
  }

  addOneTime(
    device: DeviceRef,
    kind: OneTimeKind,
    prekeys: OneTimePrekey[],
    maxTotal: number,
    replaceExisting = false,
  ): Promise<number> {
    return Promise.try(() => {
      checkDeviceRef(device);
      const stock = prekeyStock(kind);
      const what = kind === "ec" ? "one-time prekeys" : "one-time KEM prekeys";
      return this.#shelf.add(device, stock, prekeyItems(prekeys), maxTotal, replaceExisting, what);
    });
  }

  setLastResortKem(device: DeviceRef, prekey: OneTimePrekey): Promise<void> {
    return Promise.try(() => {
      checkDeviceRef(device);
      this.#shelf.setSlot(device, SLOT_LAST_RESORT_KEM, prekeyItem(prekey, "lastResortKem"));
    });
  }

  claimBundle(device: DeviceRef, options: ClaimOptions = {}): Promise<ClaimedBundle> {
    return Promise.try(() => {
      checkDeviceRef(device);
      const bundle: ClaimedBundle = {};
      const signed = this.#shelf.slot(device, SLOT_SIGNED_PREKEY);
      if (signed) bundle.signedPrekey = signedPrekeyFromItem(signed);
      const [ec, kem] = options.oneTime === false
        ? [undefined, undefined]
        : this.#shelf.claim(device, [prekeyStock("ec"), prekeyStock("kem")]);
      if (ec) bundle.oneTimePrekey = prekeyFromItem(ec);
      const lastResort = kem ? undefined : this.#shelf.slot(device, SLOT_LAST_RESORT_KEM);
      if (kem) bundle.kemPrekey = { ...prekeyFromItem(kem), lastResort: false };
      else if (lastResort) bundle.kemPrekey = { ...prekeyFromItem(lastResort), lastResort: true };
      return bundle;
    });
  }

  counts(device: DeviceRef): Promise<PrekeyCounts> {
    return Promise.try(() => {
      checkDeviceRef(device);
      const signed = this.#shelf.slot(device, SLOT_SIGNED_PREKEY);
      return {
        oneTimePrekeys: this.#shelf.count(device, prekeyStock("ec")),
        kemPrekeys: this.#shelf.count(device, prekeyStock("kem")),
        signedPrekeyId: signed ? Number(signed.itemId) : 0,
        signedPrekeyUploadedAtMs: signed?.uploadedAtMs ?? 0,
        hasLastResortKemPrekey: this.#shelf.slot(device, SLOT_LAST_RESORT_KEM) !== undefined,
      };
    });
  }
}

export class SqliteKeyPackages implements KeyPackageStore {
  readonly #shelf: SqliteKeyShelf;

  constructor(shelf: SqliteKeyShelf) {
    this.#shelf = shelf;
  }

  add(
    device: DeviceRef,
    cipherSuite: number,
    packages: KeyPackage[],
    maxTotal: number,
    replaceExisting = false,
  ): Promise<number> {
    return Promise.try(() => {
      checkDeviceRef(device);
      const stock = keyPackageStock(cipherSuite);
      const items = keyPackageItems(packages);
      return this.#shelf.add(device, stock, items, maxTotal, replaceExisting, "key packages");
    });
  }

  setLastResort(device: DeviceRef, cipherSuite: number, keyPackage: KeyPackage): Promise<void> {
    return Promise.try(() => {
      checkDeviceRef(device);
      this.#shelf.setSlot(device, keyPackageSlot(cipherSuite), keyPackageItem(keyPackage));
    });
  }

  claim(device: DeviceRef, cipherSuite: number, options: ClaimOptions = {}) {
    return Promise.try(() => {
      checkDeviceRef(device);
      const [item] = options.oneTime === false
        ? [undefined]
        : this.#shelf.claim(device, [keyPackageStock(cipherSuite)]);
      if (item) return { ...keyPackageFromItem(item), lastResort: false };
      const lastResort = this.#shelf.slot(device, keyPackageSlot(cipherSuite));
      return lastResort ? { ...keyPackageFromItem(lastResort), lastResort: true } : undefined;
    });
  }

  count(device: DeviceRef, cipherSuite: number) {
    return Promise.try(() => {
      checkDeviceRef(device);
      return {
        count: this.#shelf.count(device, keyPackageStock(cipherSuite)),
        hasLastResort: this.#shelf.slot(device, keyPackageSlot(cipherSuite)) !== undefined,
      };
    });
  }
}
