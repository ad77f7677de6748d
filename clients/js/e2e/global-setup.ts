/**
 * Vitest globalSetup: builds roomcast-node once for the whole run (unless
 * ROOMCAST_NODE_BIN names one) and hands it to the workers through the env.
 */
import { nodeBinary } from './cluster.js';

export default function setup(): void {
	process.env.ROOMCAST_NODE_BIN = nodeBinary();
}
