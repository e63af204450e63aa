// Repeating work that never overlaps itself: the next run is scheduled when one finishes, and
// a run asked for while one is in flight happens once, right after it.

export class Poller {
  constructor(intervalMs, work) {
    this.intervalMs = intervalMs;
    this.work = work;
    this.timer = null;
    this.running = false;
    this.inFlight = null;
    this.again = false;
  }

  start() {
    if (this.running) return;
    this.running = true;
    this.tick();
  }

  stop() {
    this.running = false;
    clearTimeout(this.timer);
  }

  async tick() {
    if (this.inFlight) {
      this.again = true;
      return this.inFlight;
    }
    clearTimeout(this.timer);
    if (!this.running) return undefined;
    this.inFlight = this.runs();
    try {
      await this.inFlight;
    } finally {
      this.inFlight = null;
    }
    if (this.running) this.timer = setTimeout(() => this.tick(), this.intervalMs);
    return undefined;
  }

  async runs() {
    do {
      this.again = false;
      try {
        await this.work();
      } catch (error) {
        console.warn(`${error.message || error}`);
      }
    } while (this.again && this.running);
  }
}
