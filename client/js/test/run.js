// A tiny test runner: no dependencies, results on the page and in window.testResults.
import { tests } from "./all.js";

const results = { done: false, passed: 0, failed: 0, failures: [], names: [] };
window.testResults = results;

for (const [name, fn] of tests) {
  const li = document.createElement("li");
  try {
    await Promise.race([
      fn(),
      new Promise((_, reject) => setTimeout(() => reject(new Error("timed out after 5 s")), 5000)),
    ]);
    results.passed++;
    li.className = "pass";
    li.textContent = `ok ${name}`;
  } catch (error) {
    results.failed++;
    results.failures.push(`${name}: ${error?.stack ?? error}`);
    li.className = "fail";
    li.textContent = `FAIL ${name}: ${error?.message ?? error}`;
  }
  results.names.push(name);
  document.getElementById("results").append(li);
}
results.done = true;
document.getElementById("summary").textContent = `${results.passed} passed, ${results.failed} failed`;
