/**
 * Rows of a sample worked on between two pauses of the event loop, wherever a sample's rows are
 * run through a plan in pieces (the finite-statistics check's blocks, the screening of a traffic
 * sample and its predictions, the BatchNorm pictures' prefixes): a piece of 64 rows is a few
 * milliseconds of a convolutional model's work, so requests that arrive meanwhile wait for that
 * instead of the whole sample (docs/drift.md, Pictures).
 */
export const TURN_ROWS = 64;
