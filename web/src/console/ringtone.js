/**
 * The offer ringtone, synthesised with Web Audio (no sound file): a soft two-note chime repeated
 * every two seconds while an offer waits. Browsers only let a page play sound after a user
 * gesture, so `unlock()` is called from the sign-in click.
 */
export class Ringtone {
  constructor() {
    this.context = null;
    this.timer = null;
  }

  unlock() {
    const Context = globalThis.AudioContext || globalThis.webkitAudioContext;
    if (!Context) return;
    if (!this.context) this.context = new Context();
    if (this.context.state === "suspended") this.context.resume().catch(() => {});
  }

  get ringing() {
    return this.timer !== null;
  }

  start() {
    if (this.timer !== null) return;
    this.chime();
    this.timer = setInterval(() => this.chime(), 2000);
  }

  stop() {
    clearInterval(this.timer);
    this.timer = null;
  }

  chime() {
    const context = this.context;
    if (!context || context.state !== "running") return;
    const now = context.currentTime;
    [659.25, 880].forEach((frequency, index) => {
      const oscillator = context.createOscillator();
      const gain = context.createGain();
      oscillator.type = "sine";
      oscillator.frequency.value = frequency;
      const start = now + index * 0.18;
      gain.gain.setValueAtTime(0.0001, start);
      gain.gain.exponentialRampToValueAtTime(0.25, start + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, start + 0.35);
      oscillator.connect(gain).connect(context.destination);
      oscillator.start(start);
      oscillator.stop(start + 0.4);
    });
  }
}
