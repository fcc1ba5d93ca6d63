"""Reports: the HTML page and the plots every task's evaluation writes."""
