// The e2e client tests' harness: named checks that report and count failures, and the exit status.
let failures = 0;

export async function check(name, fn) {
  try {
    await fn();
    console.log("ok   " + name);
  } catch (e) {
    failures++;
    console.log("FAIL " + name + "\n     " + (e.stack || e).toString().split("\n").slice(0, 6).join("\n     "));
  }
}

// Exits 1 when any check failed.
export function finish() {
  if (failures) {
    console.log(`${failures} check(s) failed`);
    process.exit(1);
  }
}
