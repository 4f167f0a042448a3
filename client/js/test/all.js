// Every unit test of the browser client, for run.js (a browser) and node.js (Node).
import { tests as client } from "./client.test.js";
import { tests as rotation } from "./rotation.test.js";

/** @type {[string, () => unknown][]} */
export const tests = [...client, ...rotation];
