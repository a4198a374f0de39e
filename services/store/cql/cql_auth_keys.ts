/**
 * PrekeyStore and KeyPackageStore on CQL, over per-device stocks of one-time items and
 * single-valued slots (names in auth_rules.ts). Table design: docs/STORAGE.md, "Auth tables".
 *
 * A claim is one lightweight transaction on the item's own partition, so claims of different
 * items never contend: a claimer lists the first candidates of the stock, picks one at random
 * (spreading concurrent claimers over different items), reads it, and claims it with
 * `UPDATE ... SET claimed_by = <token> IF claimed_by = null AND data = <data read>`. A lost race
 * moves on to another candidate; the winner deletes the item and its index entry.
 */
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
  STOCK_MAX_TOTAL,
  type StockItem,
  validateUpload,
} from "../auth_rules.ts";
import { StoreUnavailableError } from "../errors.ts";
import type { DeviceRef } from "../ports.ts";
import { sleep } from "../../platform/time.ts";
import {
  decideOne,
  forEachLimited,
  newToken,
  readAll,
  toBuffer,
  toBytes,
  writeTimestamp,
} from "./cql_auth_support.ts";
import type { CqlRow, CqlSession } from "./cql_session.ts";

/** Candidates a claimer chooses from at random: spreads concurrent claimers over items. */
const CLAIM_CANDIDATES = 64;
/** Items one claim tries before giving up (each loss means another claimer got that item). */
const CLAIM_ATTEMPTS_MAX = 64;
const WRITE_CONCURRENCY = 16;
/** Every stock of a device together (two prekey kinds plus a few cipher suites). */
const DEVICE_INDEX_ROWS_MAX = STOCK_MAX_TOTAL * 16;

function statements(ks: string) {
  const device = "account_id = ? AND device_id = ?";
  const stock = `${device} AND stock = ?`;
  const item = `${stock} AND item_id = ?`;
  return {
    candidates: `SELECT item_id FROM ${ks}.one_time_index WHERE ${stock} LIMIT ?`,
    count: `SELECT COUNT(*) AS n FROM ${ks}.one_time_index WHERE ${stock}`,
    stockIds: `SELECT item_id FROM ${ks}.one_time_index WHERE ${stock}`,
    deviceIds: `SELECT stock, item_id FROM ${ks}.one_time_index WHERE ${device}`,
    insertIndex: `INSERT INTO ${ks}.one_time_index (account_id, device_id, stock, item_id)
      VALUES (?, ?, ?, ?) USING TIMESTAMP ?`,
    deleteIndex: `DELETE FROM ${ks}.one_time_index USING TIMESTAMP ? WHERE ${item}`,
    insertItem: `INSERT INTO ${ks}.one_time_items (account_id, device_id, stock, item_id, data,
      signature, claimed_by) VALUES (?, ?, ?, ?, ?, ?, null) USING TIMESTAMP ?`,
    readItem: `SELECT data, signature, claimed_by FROM ${ks}.one_time_items WHERE ${item}`,
    claimItem: `UPDATE ${ks}.one_time_items SET claimed_by = ? WHERE ${item}
      IF claimed_by = null AND data = ?`,
    deleteItem: `DELETE FROM ${ks}.one_time_items USING TIMESTAMP ? WHERE ${item}`,
    setSlot: `INSERT INTO ${ks}.device_key_slots (account_id, device_id, slot, item_id, data,
      signature, uploaded_at) VALUES (?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ?`,
    getSlot: `SELECT item_id, data, signature, uploaded_at FROM ${ks}.device_key_slots
      WHERE ${device} AND slot = ?`,
    deleteSlots: `DELETE FROM ${ks}.device_key_slots USING TIMESTAMP ? WHERE ${device}`,
  };
}

type ItemKey = [accountId: string, deviceId: string, stock: string, itemId: string];

/** Stocks and slots of devices: the storage both key stores share. */
export class CqlKeyShelf {
  readonly #s: CqlSession;
  readonly #q: ReturnType<typeof statements>;

  constructor(session: CqlSession, keyspace: string) {
    this.#s = session;
    this.#q = statements(keyspace);
  }

  /**
   * Adds items to a stock; with `replace` the stored items not in this upload are deleted
   * afterwards. The cap is checked before anything is written (concurrent uploads of one
   * device may overshoot it by one upload; it is a resource limit, not a unique decision).
   */
  async add(
    device: DeviceRef,
    stock: string,
    items: StockItem[],
    maxTotal: number,
    replace: boolean,
    what: string,
  ): Promise<number> {
    validateUpload(items, maxTotal);
    const key = [device.accountId, device.deviceId, stock] as const;
    const stored = await this.#stockIds(key);
    const uploaded = new Set(items.map((item) => item.itemId));
    const kept = replace ? 0 : stored.filter((id) => !uploaded.has(id)).length;
    if (kept + items.length > maxTotal) throw new KeyLimitError(maxTotal, what);
    // Item first, then its index entry: an entry always points at a written item.
    await forEachLimited(items, WRITE_CONCURRENCY, async (item) => {
      const at = writeTimestamp();
      await this.#s.execute(this.#q.insertItem, [
        ...key,
        item.itemId,
        toBuffer(item.data),
        item.signature ? toBuffer(item.signature) : null,
        at,
      ]);
      await this.#s.execute(this.#q.insertIndex, [...key, item.itemId, at]);
    });
    if (replace) {
      const dropped = stored.filter((id) => !uploaded.has(id));
      await forEachLimited(dropped, WRITE_CONCURRENCY, (id) => this.#delete([...key, id]));
    }
    return await this.count(device, stock);
  }

  /** Removes and returns one item of the stock, or undefined when it is empty. */
  async claim(device: DeviceRef, stock: string): Promise<StockItem | undefined> {
    const skip = new Set<string>();
    for (let attempt = 1; attempt <= CLAIM_ATTEMPTS_MAX; attempt++) {
      const listed = await this.#s.execute(this.#q.candidates, [
        device.accountId,
        device.deviceId,
        stock,
        CLAIM_CANDIDATES + skip.size,
      ]);
      const candidates = listed.rows
        .map((row) => String(row.item_id))
        .filter((id) => !skip.has(id))
        .slice(0, CLAIM_CANDIDATES);
      if (candidates.length === 0) return undefined;
      const itemId = candidates[Math.floor(Math.random() * candidates.length)]!;
      const key: ItemKey = [device.accountId, device.deviceId, stock, itemId];
      const found = (await this.#s.execute(this.#q.readItem, key)).rows[0];
      const data = toBytes(found?.data);
      if (!data || found?.claimed_by != null) {
        // Claimed already (or mid-deletion): finish its cleanup, which is always safe.
        skip.add(itemId);
        await this.#delete(key);
        continue;
      }
      const token = newToken();
      const decision = await decideOne(
        this.#s,
        "claiming a one-time key",
        this.#q.claimItem,
        [token, ...key, toBuffer(data)],
        (row: CqlRow) => row.claimed_by === token,
      );
      if (decision.won) {
        await this.#delete(key);
        const signature = toBytes(found?.signature);
        return { itemId, data, ...(signature ? { signature } : {}) };
      }
      // Another claimer won it, unless only its data changed (re-uploaded): then retry it.
      if (decision.row?.claimed_by != null || decision.row?.data == null) skip.add(itemId);
      if (attempt > 2) await sleep(Math.random() * 5);
    }
    throw new StoreUnavailableError(
      `could not claim a one-time key after ${CLAIM_ATTEMPTS_MAX} attempts (contention); retry`,
    );
  }

  async count(device: DeviceRef, stock: string): Promise<number> {
    const result = await this.#s.execute(this.#q.count, [device.accountId, device.deviceId, stock]);
    return Number(result.rows[0]?.n ?? 0);
  }

  async setSlot(device: DeviceRef, slot: string, value: SlotValue): Promise<void> {
    await this.#s.execute(this.#q.setSlot, [
      device.accountId,
      device.deviceId,
      slot,
      value.itemId,
      toBuffer(value.data),
      value.signature ? toBuffer(value.signature) : null,
      value.uploadedAtMs === undefined ? null : BigInt(value.uploadedAtMs),
      writeTimestamp(),
    ]);
  }

  async slot(device: DeviceRef, slot: string): Promise<SlotValue | undefined> {
    const result = await this.#s.execute(this.#q.getSlot, [
      device.accountId,
      device.deviceId,
      slot,
    ]);
    const row = result.rows[0];
    const data = toBytes(row?.data);
    if (!row || !data) return undefined;
    const signature = toBytes(row.signature);
    return {
      itemId: String(row.item_id),
      data,
      ...(signature ? { signature } : {}),
      ...(row.uploaded_at != null ? { uploadedAtMs: Number(row.uploaded_at) } : {}),
    };
  }

  /** Deletes every stock item and slot of a device (reinstall, removal, account deletion). */
  async clearDevice(device: DeviceRef): Promise<void> {
    const rows = await readAll(
      this.#s,
      this.#q.deviceIds,
      [device.accountId, device.deviceId],
      DEVICE_INDEX_ROWS_MAX,
    );
    // Row by row, never a partition tombstone: keys uploaded right after (new ids) stay visible.
    await forEachLimited(
      rows,
      WRITE_CONCURRENCY,
      (row) =>
        this.#delete([device.accountId, device.deviceId, String(row.stock), String(row.item_id)]),
    );
    await this.#s.execute(this.#q.deleteSlots, [
      writeTimestamp(),
      device.accountId,
      device.deviceId,
    ]);
  }

  async #stockIds(key: readonly [string, string, string]): Promise<string[]> {
    const rows = await readAll(this.#s, this.#q.stockIds, [...key], STOCK_MAX_TOTAL * 2);
    return rows.map((row) => String(row.item_id));
  }

  /** Item first, then the index entry: a stale entry is skipped and cleaned by claimers. */
  async #delete(key: ItemKey): Promise<void> {
    await this.#s.execute(this.#q.deleteItem, [writeTimestamp(), ...key]);
    await this.#s.execute(this.#q.deleteIndex, [writeTimestamp(), ...key]);
  }
}

export class CqlPrekeys implements PrekeyStore {
  readonly #shelf: CqlKeyShelf;

  constructor(shelf: CqlKeyShelf) {
    this.#shelf = shelf;
  }

  async setSignedPrekey(device: DeviceRef, prekey: SignedPrekey, atMs: number): Promise<void> {
    checkDeviceRef(device);
    checkMs(atMs, "atMs");
    const item = signedPrekeyItem(prekey);
    await this.#shelf.setSlot(device, SLOT_SIGNED_PREKEY, { ...item, uploadedAtMs: atMs });
  }

  async addOneTime(
    device: DeviceRef,
    kind: OneTimeKind,
    prekeys: OneTimePrekey[],
    maxTotal: number,
    replaceExisting = false,
  ): Promise<number> {
    checkDeviceRef(device);
    const stock = prekeyStock(kind);
    const items = prekeyItems(prekeys);
    const what = kind === "ec" ? "one-time prekeys" : "one-time KEM prekeys";
    return await this.#shelf.add(device, stock, items, maxTotal, replaceExisting, what);
  }

  async setLastResortKem(device: DeviceRef, prekey: OneTimePrekey): Promise<void> {
    checkDeviceRef(device);
    await this.#shelf.setSlot(device, SLOT_LAST_RESORT_KEM, prekeyItem(prekey, "lastResortKem"));
  }

  async claimBundle(device: DeviceRef, options: ClaimOptions = {}): Promise<ClaimedBundle> {
    checkDeviceRef(device);
    const oneTime = options.oneTime !== false;
    // Independent reads and claims run together: a bundle costs the slowest of them.
    const [signed, ec, kem, lastResort] = await Promise.all([
      this.#shelf.slot(device, SLOT_SIGNED_PREKEY),
      oneTime ? this.#shelf.claim(device, prekeyStock("ec")) : undefined,
      oneTime ? this.#shelf.claim(device, prekeyStock("kem")) : undefined,
      this.#shelf.slot(device, SLOT_LAST_RESORT_KEM),
    ]);
    const bundle: ClaimedBundle = {};
    if (signed) bundle.signedPrekey = signedPrekeyFromItem(signed);
    if (ec) bundle.oneTimePrekey = prekeyFromItem(ec);
    if (kem) bundle.kemPrekey = { ...prekeyFromItem(kem), lastResort: false };
    else if (lastResort) bundle.kemPrekey = { ...prekeyFromItem(lastResort), lastResort: true };
    return bundle;
  }

  async counts(device: DeviceRef): Promise<PrekeyCounts> {
    checkDeviceRef(device);
    const [ec, kem, signed, lastResort] = await Promise.all([
      this.#shelf.count(device, prekeyStock("ec")),
      this.#shelf.count(device, prekeyStock("kem")),
      this.#shelf.slot(device, SLOT_SIGNED_PREKEY),
      this.#shelf.slot(device, SLOT_LAST_RESORT_KEM),
    ]);
    return {
      oneTimePrekeys: ec,
      kemPrekeys: kem,
      signedPrekeyId: signed ? Number(signed.itemId) : 0,
      signedPrekeyUploadedAtMs: signed?.uploadedAtMs ?? 0,
      hasLastResortKemPrekey: lastResort !== undefined,
    };
  }
}

export class CqlKeyPackages implements KeyPackageStore {
  readonly #shelf: CqlKeyShelf;

  constructor(shelf: CqlKeyShelf) {
    this.#shelf = shelf;
  }

  async add(
    device: DeviceRef,
    cipherSuite: number,
    packages: KeyPackage[],
    maxTotal: number,
    replaceExisting = false,
  ): Promise<number> {
    checkDeviceRef(device);
    const stock = keyPackageStock(cipherSuite);
    const items = keyPackageItems(packages);
    return await this.#shelf.add(device, stock, items, maxTotal, replaceExisting, "key packages");
  }

  async setLastResort(device: DeviceRef, cipherSuite: number, keyPackage: KeyPackage) {
    checkDeviceRef(device);
    await this.#shelf.setSlot(device, keyPackageSlot(cipherSuite), keyPackageItem(keyPackage));
  }

  async claim(device: DeviceRef, cipherSuite: number, options: ClaimOptions = {}) {
    checkDeviceRef(device);
    const item = options.oneTime === false
      ? undefined
      : await this.#shelf.claim(device, keyPackageStock(cipherSuite));
    if (item) return { ...keyPackageFromItem(item), lastResort: false };
    const lastResort = await this.#shelf.slot(device, keyPackageSlot(cipherSuite));
    return lastResort ? { ...keyPackageFromItem(lastResort), lastResort: true } : undefined;
  }

  async count(device: DeviceRef, cipherSuite: number) {
    checkDeviceRef(device);
    const [count, lastResort] = await Promise.all([
      this.#shelf.count(device, keyPackageStock(cipherSuite)),
      this.#shelf.slot(device, keyPackageSlot(cipherSuite)),
    ]);
    return { count, hasLastResort: lastResort !== undefined };
  }
}
