// A run's metric series in memory: per key, steps kept sorted with their values and timestamps.

export class SeriesStore {
  constructor() {
    this.series = new Map();
  }

  // Whole series as GET /metrics returns them ({steps, values, timestamps} per key).
  load(series) {
    for (const [key, s] of Object.entries(series)) {
      this.series.set(key, {
        steps: [...s.steps],
        values: [...s.values],
        timestamps: [...s.timestamps],
      });
    }
  }

  // Live points ({key, step, value, timestamp}); a point for an existing step replaces it.
  add(points) {
    for (const p of points) {
      const s = this.series.get(p.key) || { steps: [], values: [], timestamps: [] };
      this.series.set(p.key, s);
      // Points mostly come in order: look further back only when this one is not the last.
      let i = s.steps.length;
      if (i && s.steps[i - 1] >= p.step) i = s.steps.findIndex((x) => x >= p.step);
      if (s.steps[i] === p.step) {
        s.values[i] = p.value;
        s.timestamps[i] = p.timestamp;
      } else {
        s.steps.splice(i, 0, p.step);
        s.values.splice(i, 0, p.value);
        s.timestamps.splice(i, 0, p.timestamp);
      }
    }
  }

  get(key) {
    return this.series.get(key);
  }

  keys() {
    return [...this.series.keys()];
  }
}
