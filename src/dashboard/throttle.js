// Work that events ask for, done at most once per interval however fast they arrive.

// Runs `work` at most once per `gapMs`; a call while it runs makes it run once more after.
export function throttled(work, gapMs) {
  let running = false;
  let again = false;
  let timer = null;
  let last = 0;
  const schedule = () => {
    if (running) again = true;
    else if (!timer) timer = setTimeout(run, Math.max(0, last + gapMs - Date.now()));
  };
  const run = async () => {
    timer = null;
    running = true;
    again = false;
    last = Date.now();
    try {
      await work();
    } catch (error) {
      console.warn(error);
    } finally {
      running = false;
      if (again) schedule();
    }
  };
  return schedule;
}
