/** Single-use, bounded, expiring records live in shared (the panel uses them too). */
export { EphemeralStore } from '@argos/shared/ephemeral';
