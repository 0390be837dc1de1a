/** kill-on-rename.mjs: the path to preload with NODE_OPTIONS=--import. */
export declare const KILL_ON_RENAME_MODULE: string;
