// The unit tests under Node (20 or later, no packages): `node client/js/test/node.js`.
// The same tests run in a browser through index.html and run.js.
import { tests } from "./all.js";

let passed = 0;
const failures = [];
for (const [name, fn] of tests) {
  let timer;
  try {
    await Promise.race([
      fn(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error("timed out after 5 s")), 5000);
      }),
    ]);
    passed++;
    console.log(`ok ${name}`);
  } catch (error) {
    failures.push(name);
    console.log(`FAIL ${name}: ${error?.stack ?? error}`);
  } finally {
    clearTimeout(timer);
  }
}
console.log(`${passed} passed, ${failures.length} failed`);
// Clients the tests left open still have timers (a rotation in 100 minutes): exit now.
process.exit(failures.length ? 1 : 0);
