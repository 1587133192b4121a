/**
 * V8 heap sizing for the gatekeeper, imported first by main.ts (before anything allocates much).
 *
 * Under load, short-lived request objects that happen to be alive at a scavenge are promoted to the old generation
 * (~100 B per request under a flood of new addresses). With V8's default growing factor (up to 4× the live size after a
 * major collection) that garbage piles up to 120+ MB before the next major collection, so resident memory swings by
 * 80–90 MB between runs of the same flood. Capping the factor at 1.5× keeps the old generation within ~50 MB.
 * Measured with `npm run bench` on the 2-core machine: flood growth +13 to +16 MB (was +3 to +95 MB, depending on
 * when the major collection fell), and no measurable cost on /verify throughput (major collections are concurrent
 * and took ~10 ms of main-thread time per minute either way; scavenges got cheaper with the smaller old generation).
 */
import v8 from 'node:v8';

v8.setFlagsFromString('--heap-growing-percent=50');
