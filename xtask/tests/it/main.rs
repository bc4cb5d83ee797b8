mod contracts;
mod layering;
mod workflows;
