/**
 * Country lookups from an mmdb file (maxmind / mmdb-lib), with the gotchas handled:
 * - the address is validated and normalised first (IPv4-mapped IPv6 → IPv4, which the databases otherwise miss;
 *   `get('1.2.3')` would even answer a country for an invalid address);
 * - private, loopback, link-local, CGNAT and unique-local addresses are the pseudo-country `LAN`, never looked up;
 * - documentation, benchmarking, multicast and reserved addresses are unknown (some databases answer AU for TEST-NET);
 * - both record shapes are read: DB-IP / ip-location-db flat `{country_code}` and MaxMind nested `{country:{iso_code}}`;
 * - an IPv4-only database is never asked about an IPv6 address (it answers garbage).
 * Lookups are synchronous and cached in a bounded LRU. The database can be swapped at runtime (`reload`, `watch`):
 * a new reader is built and validated off to the side, then replaces the old one in one assignment.
 */
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { isIP } from 'node:net';
import { LRUCache } from 'lru-cache';
import { Reader } from 'maxmind';
import { cidrContains, ipToBytes, normalizeIp, parseCidr, type Cidr } from './net.ts';

export const LAN = 'LAN';

const cidrs = (list: string[]): Cidr[] => list.map((c) => parseCidr(c)!);

/** Addresses of the operator's own networks: the pseudo-country LAN. */
export const LAN_RANGES = cidrs([
  '10.0.0.0/8',
  '172.16.0.0/12',
  '192.168.0.0/16',
  '127.0.0.0/8',
  '169.254.0.0/16',
  '100.64.0.0/10', // CGNAT (RFC 6598)
  '::1/128',
  'fe80::/10', // link-local
  'fc00::/7', // unique local (ULA)
  'fec0::/10', // deprecated site-local
]);

/** Addresses no real internet client has: never looked up, reported as unknown. */
export const RESERVED_RANGES = cidrs([
  '0.0.0.0/8',
  '192.0.0.0/24',
  '192.0.2.0/24', // TEST-NET-1
  '198.51.100.0/24', // TEST-NET-2
  '203.0.113.0/24', // TEST-NET-3
  '198.18.0.0/15', // benchmarking
  '224.0.0.0/4', // multicast
  '240.0.0.0/4', // reserved, broadcast
  '::/128',
  '100::/64', // discard
  '2001:db8::/32', // documentation
  '3fff::/20', // documentation (RFC 9637)
  'ff00::/8', // multicast
]);

/** LAN, reserved, or a public address (normalised text expected). */
export function addressClass(ip: string): 'lan' | 'reserved' | 'public' {
  const b = ipToBytes(ip);
  if (!b) return 'reserved';
  for (const c of LAN_RANGES) if (cidrContains(c, b)) return 'lan';
  for (const c of RESERVED_RANGES) if (cidrContains(c, b)) return 'reserved';
  return 'public';
}

interface CountryRecord {
  country_code?: unknown;
  country?: { iso_code?: unknown };
  registered_country?: { iso_code?: unknown };
}

/** The ISO code from either record shape, or null. */
export function countryOf(rec: unknown): string | null {
  if (!rec || typeof rec !== 'object') return null;
  const r = rec as CountryRecord;
  const code = r.country?.iso_code ?? r.country_code ?? r.registered_country?.iso_code;
  return typeof code === 'string' && /^[A-Za-z]{2}$/.test(code) ? code.toUpperCase() : null;
}

export interface GeoAttribution {
  text: string;
  url: string;
  licence: string;
  licenceUrl: string;
}

export interface GeoInfo {
  /** The database type from its metadata (e.g. "country ipvAll", "DBIP-Country-Lite", "GeoLite2-Country"). */
  databaseType: string;
  description: string | null;
  /** Build date of the database (ISO 8601). */
  buildEpoch: string;
  ipVersion: number;
  file: string;
  source: 'bundled' | 'downloaded' | 'file';
  /** When this process loaded it (ISO 8601). */
  loadedAt: string;
  attribution: GeoAttribution;
}

/** The licence notice a database's data requires, by what its metadata says it is. */
export function attributionFor(databaseType: string, description: string | null, file: string): GeoAttribution {
  const what = `${databaseType} ${description ?? ''} ${path.basename(file)}`.toLowerCase();
  if (what.includes('dbip') || what.includes('db-ip')) {
    return { text: 'IP Geolocation by DB-IP', url: 'https://db-ip.com', licence: 'CC BY 4.0', licenceUrl: 'https://creativecommons.org/licenses/by/4.0/' };
  }
  if (what.includes('geolite') || what.includes('geoip2')) {
    return {
      text: 'This product includes GeoLite2 data created by MaxMind, available from https://www.maxmind.com',
      url: 'https://www.maxmind.com',
      licence: 'GeoLite2 End User License Agreement',
      licenceUrl: 'https://www.maxmind.com/en/geolite2/eula',
    };
  }
  if (what.includes('geo-whois-asn')) {
    return {
      text: 'IP to country data: Number Resource Organization (NRO) statistics, via ip-location-db geo-whois-asn-country',
      url: 'https://www.nro.net/',
      licence: 'CC BY 4.0',
      licenceUrl: 'https://creativecommons.org/licenses/by/4.0/',
    };
  }
  return { text: `IP to country data: ${databaseType} (check the licence of its source)`, url: '', licence: 'unknown', licenceUrl: '' };
}

const require = createRequire(import.meta.url);

/** The database shipped with Argos (npm @ip-location-db/geo-whois-asn-country-mmdb, NRO data, CC BY 4.0). */
export function bundledGeoFile(): string {
  return require.resolve('@ip-location-db/geo-whois-asn-country-mmdb/geo-whois-asn-country.mmdb');
}

/** Where the updater puts a downloaded database. */
export function downloadedGeoFile(dataDir: string): string {
  return path.join(dataDir, 'geo', 'country.mmdb');
}

/** Well-known public addresses a real country database must answer for. */
export const PROBE_IPS = ['8.8.8.8', '1.1.1.1', '81.2.69.142', '9.9.9.9', '2001:4860:4860::8888', '2a00:1450:4001:80b::200e'];

type AnyReader = Reader<Record<string, unknown>>;

/** Checks that a reader is a usable country database; returns the problem, or null when it is fine. */
export function readerProblem(reader: AnyReader): string | null {
  const md = reader.metadata;
  if (!/country/i.test(md.databaseType)) return `database type is "${md.databaseType}", not a country database`;
  const probes = PROBE_IPS.filter((ip) => md.ipVersion === 6 || isIP(ip) === 4);
  let answered = 0;
  for (const ip of probes) {
    try {
      if (countryOf(reader.get(ip))) answered++;
    } catch {
      /* a broken tree: counts as no answer */
    }
  }
  if (answered < 2) return `only ${answered} of ${probes.length} well-known addresses have a country: not a usable country database`;
  return null;
}

const GZIP_MAGIC = [0x1f, 0x8b];

/** Builds and validates a reader from file contents. Throws with a clear message. */
export function readerFromBuffer(buf: Buffer): AnyReader {
  if (buf[0] === GZIP_MAGIC[0] && buf[1] === GZIP_MAGIC[1]) throw new Error('the file is gzip-compressed, not an mmdb database');
  let reader: AnyReader;
  try {
    const records = new LRUCache<number, object>({ max: 2000 });
    reader = new Reader(buf, { cache: { get: (k: number) => records.get(k), set: (k: number, v: object) => void records.set(k, v) } });
  } catch (e) {
    throw new Error(`not a readable mmdb database (${e instanceof Error ? e.message : String(e)})`, { cause: e });
  }
  const problem = readerProblem(reader);
  if (problem) throw new Error(problem);
  return reader;
}

interface Loaded {
  reader: AnyReader;
  info: GeoInfo;
  signature: string;
}

const signatureOf = (st: fs.Stats) => `${st.ino}:${st.size}:${st.mtimeMs}`;

function sourceOf(file: string, dataDir: string | null): GeoInfo['source'] {
  if (file === bundledGeoFile()) return 'bundled';
  if (dataDir && file === downloadedGeoFile(dataDir)) return 'downloaded';
  return 'file';
}

/** The updater's note next to a downloaded file: where it came from (for attribution). */
export function sourceNoteFile(file: string): string {
  return `${file}.source.json`;
}

function readSourceUrl(file: string): string {
  try {
    const note = JSON.parse(fs.readFileSync(sourceNoteFile(file), 'utf8')) as { url?: unknown };
    return typeof note.url === 'string' ? note.url : '';
  } catch {
    return '';
  }
}

async function load(file: string, dataDir: string | null): Promise<Loaded> {
  const st = await fs.promises.stat(file);
  const buf = await fs.promises.readFile(file);
  const reader = readerFromBuffer(buf);
  const md = reader.metadata;
  const desc = md.description as unknown as Record<string, string> | undefined;
  const description = desc && typeof desc === 'object' ? (desc.en ?? Object.values(desc)[0] ?? null) : null;
  return {
    reader,
    signature: signatureOf(st),
    info: {
      databaseType: md.databaseType,
      description,
      buildEpoch: md.buildEpoch.toISOString(),
      ipVersion: md.ipVersion,
      file,
      source: sourceOf(file, dataDir),
      loadedAt: new Date().toISOString(),
      attribution: attributionFor(md.databaseType, description, `${file} ${readSourceUrl(file)}`),
    },
  };
}

export interface GeoLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

/**
 * Cached answers (by address text). Small on purpose: it serves the clients active right now (a lookup in the tree
 * costs ~1.5 µs, a hit ~0.1 µs), while a flood of new addresses churns through it in a fraction of a second, so its
 * entries die young instead of piling up in V8's old generation (measured: the 50,000-entry cache this replaced
 * made the heap of a gatekeeper under a 1,000,000-address flood grow by ~70 MB between major collections).
 */
const DEFAULT_CACHE_SIZE = 2_000;

export class GeoDb {
  private current: Loaded;
  private readonly cache: LRUCache<string, string>;
  private failedSignature: string | null = null;
  private timer: NodeJS.Timeout | null = null;
  private checking = false;

  private constructor(
    loaded: Loaded,
    private readonly dataDir: string | null,
    cacheSize: number,
  ) {
    this.current = loaded;
    this.cache = new LRUCache({ max: cacheSize });
  }

  /** Opens one file (validated: a country database that answers). */
  static async open(file: string, opts: { cacheSize?: number } = {}): Promise<GeoDb> {
    return new GeoDb(await load(file, null), null, opts.cacheSize ?? DEFAULT_CACHE_SIZE);
  }

  /**
   * Opens Argos's database: the updater's `<dataDir>/geo/country.mmdb` when present and valid, else the bundled one.
   * `watch()` then follows the downloaded file.
   */
  static async openDefault(dataDir: string, opts: { cacheSize?: number; log?: GeoLogger } = {}): Promise<GeoDb> {
    const downloaded = downloadedGeoFile(dataDir);
    let loaded: Loaded | null = null;
    if (fs.existsSync(downloaded)) {
      try {
        loaded = await load(downloaded, dataDir);
      } catch (e) {
        opts.log?.warn({ file: downloaded, err: e instanceof Error ? e.message : String(e) }, 'downloaded geo database unusable; using the bundled one');
      }
    }
    const db = new GeoDb(loaded ?? (await load(bundledGeoFile(), dataDir)), dataDir, opts.cacheSize ?? DEFAULT_CACHE_SIZE);
    if (!loaded && fs.existsSync(downloaded)) db.failedSignature = signatureOf(fs.statSync(downloaded));
    return db;
  }

  /** The client's ISO country code, `LAN`, or null when unknown. Synchronous; never throws. */
  country(rawIp: string): string | null {
    // Keyed by the text as given (the gatekeeper passes normalised addresses): a hit needs no parsing at all.
    const hit = this.cache.get(rawIp);
    if (hit !== undefined) return hit || null;
    const ip = normalizeIp(rawIp);
    const answer = ip ? this.resolve(ip) : null;
    this.cache.set(rawIp, answer ?? '');
    return answer;
  }

  private resolve(ip: string): string | null {
    const cls = addressClass(ip);
    if (cls === 'lan') return LAN;
    if (cls === 'reserved') return null;
    const { reader } = this.current;
    if (isIP(ip) === 6 && reader.metadata.ipVersion !== 6) return null;
    try {
      return countryOf(reader.get(ip));
    } catch {
      return null;
    }
  }

  info(): GeoInfo {
    return this.current.info;
  }

  get cacheSize(): number {
    return this.cache.size;
  }

  /** Replaces the database with `file` if it loads and validates; otherwise keeps the current one and throws. */
  async reload(file: string): Promise<GeoInfo> {
    const next = await load(file, this.dataDir);
    this.current = next;
    this.cache.clear();
    return next.info;
  }

  /**
   * One check of the downloaded file: reloads when it appeared or changed (inode, size, mtime).
   * A file that fails to load is remembered and not retried until it changes again; the current database stays.
   */
  async checkForUpdate(log?: GeoLogger): Promise<boolean> {
    if (!this.dataDir || this.checking) return false;
    this.checking = true;
    const file = downloadedGeoFile(this.dataDir);
    try {
      let st: fs.Stats;
      try {
        st = await fs.promises.stat(file);
      } catch {
        return false;
      }
      const sig = signatureOf(st);
      if ((this.current.info.file === file && sig === this.current.signature) || sig === this.failedSignature) return false;
      try {
        const info = await this.reload(file);
        this.failedSignature = null;
        log?.info({ file, databaseType: info.databaseType, buildEpoch: info.buildEpoch }, 'geo database reloaded');
        return true;
      } catch (e) {
        this.failedSignature = sig;
        log?.warn({ file, err: e instanceof Error ? e.message : String(e) }, 'new geo database refused; keeping the current one');
        return false;
      }
    } finally {
      this.checking = false;
    }
  }

  /** Polls the downloaded file every `intervalMs` and hot-swaps it. */
  watch(intervalMs = 3000, log?: GeoLogger): void {
    this.unwatch();
    this.timer = setInterval(() => void this.checkForUpdate(log), intervalMs);
    this.timer.unref();
  }

  unwatch(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
