export { type AppOptions, buildApp } from './app.js';
export { DEFAULTS, type ServeSettings, settingsOf } from './settings.js';
export { type Held, type Tree, Trees } from './trees.js';
