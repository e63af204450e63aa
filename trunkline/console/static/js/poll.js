// Repeating work that never overlaps itself: the next run is scheduled when one finishes.

export class Poller {
  constructor(intervalMs, work) {
    this.intervalMs = intervalMs;
    this.work = work;
    this.timer = null;
    this.running = false;
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
    clearTimeout(this.timer);
    if (!this.running) return;
    try {
      await this.work();
    } catch (error) {
      console.warn(error);
    }
    if (this.running) this.timer = setTimeout(() => this.tick(), this.intervalMs);
  }
}
